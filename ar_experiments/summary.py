"""Size and cost of a model as configured, and whether its pretrained weights load.

    python -m ar_experiments.summary model=x3d_m frames=16 data.crop_size=224 model.num_classes=400
    python -m ar_experiments.summary model=slowfast frames=32 model.weights_path=SLOWFAST_8x8_R50.pyth

Takes the training overrides; `model.num_classes=N` sets the classifier's size
(default 400, Kinetics-400's, so the numbers compare with the model zoo).
"""

from __future__ import annotations

import inspect
import sys

from omegaconf import DictConfig, OmegaConf

from .config.compose import compose_train_config

KINETICS_CLASSES = 400


def split_num_classes(args: list[str]) -> tuple[int, list[str]]:
    """(`model.num_classes`, the other overrides): the class count comes from the data when training."""
    num_classes, overrides = KINETICS_CLASSES, []
    for arg in args:
        if arg.startswith("model.num_classes="):
            num_classes = int(arg.split("=", 1)[1])
        else:
            overrides.append(arg)
    return num_classes, overrides


def _clip_stride(cfg: DictConfig) -> str:
    try:
        return f"stride {cfg.data.stride}"
    except Exception as err:  # noqa: BLE001 - the summary still stands without the data's stride
        return f"no stride ({err})"


def summarise(cfg: DictConfig, num_classes: int) -> list[str]:
    from .models import ARCHITECTURES, build_model
    from .models.builders import count_gflops
    from .models.weights import find_pretrained, load_pretrained

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    arch = ARCHITECTURES[model_cfg["name"]]
    frames, crop = model_cfg["frames"], model_cfg["crop_size"]
    build_keys = set(inspect.signature(build_model).parameters) - {"num_classes"}
    net = build_model(num_classes=num_classes, **{k: v for k, v in model_cfg.items() if k in build_keys})
    params = sum(p.numel() for p in net.parameters())
    lines = [
        f"model        {model_cfg['name']}, {num_classes} classes",
        f"clip         {frames} frames x {crop}x{crop}, {_clip_stride(cfg)}",
        f"pretraining  {arch.pretrain_frames} frames x stride {arch.pretrain_stride} at {arch.pretrain_crop} "
        f"({arch.checkpoint}, Kinetics-400)",
        f"parameters   {params / 1e6:.2f} M ({params:,})",
        f"GFLOPs/view  {count_gflops(net, frames, crop):.2f} (multiply-adds, {frames}x{crop}x{crop})",
    ]
    weights = find_pretrained(model_cfg)
    if weights is not None:
        loaded = load_pretrained(net, weights)
        lines.append(
            f"weights      {weights}: {loaded.loaded} tensors loaded, {len(loaded.skipped)} skipped "
            f"({', '.join(loaded.skipped)})"
        )
    if model_cfg.get("freeze_backbone"):
        net.freeze_backbone()
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        lines.append(f"trainable    {trainable:,} (backbone frozen)")
    return lines


def main(args: list[str] | None = None) -> None:
    args = sys.argv[1:] if args is None else args
    if {"-h", "--help"} & set(args):
        print(__doc__)
        return
    from .models.weights import PretrainedMismatchError
    from .safety.safe_load import UnsafeCheckpointError

    num_classes, overrides = split_num_classes(args)
    try:
        print("\n".join(summarise(compose_train_config(overrides), num_classes)))
    except (FileNotFoundError, PretrainedMismatchError, UnsafeCheckpointError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
