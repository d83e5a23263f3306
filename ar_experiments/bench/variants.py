"""The training settings the bench compares with the seed's, each a list of Hydra overrides.

Every variant changes one thing (or names the combination it tries) on top of
the bench's base setting, and is reported as ratios against `seed`: the same
model, frames and crop at batch 8, no compile, the trainer's precision
(bf16-mixed with trainer=gpu). Variants run in the order listed, every model
before the next variant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]
    what: str
    evaluate: bool = False  # also time validation and the multi-view test (trainer.validate, trainer.test)
    models: tuple[str, ...] | None = None  # None: every model

    def applies_to(self, model: str) -> bool:
        return self.models is None or model in self.models


SEED = Variant("seed", (), "the seed's setting: batch 8, no compile, the trainer's precision", evaluate=True)

VARIANTS = {
    variant.name: variant
    for variant in (
        SEED,
        Variant("batch32", ("data.batch_size=32",), "batch 32 (learning rate by optimizer.lr_scaling)", evaluate=True),
        Variant("compile", ("model.compile=true",), "torch.compile, default mode"),
        Variant("batch32+compile", ("data.batch_size=32", "model.compile=true"), "both", evaluate=True),
        Variant("fp32", ("trainer.precision=32-true", "model.fp32_precision=tf32"), "float32 weights, TF32 math"),
        Variant(
            "fp32-ieee", ("trainer.precision=32-true", "model.fp32_precision=ieee"), "float32 weights, full float32"
        ),
        Variant(
            "depthwise-fp32",
            ("model.depthwise_fp32=true",),
            "bf16 autocast except the depthwise 3D convolutions (float32)",
            models=("x3d_xs", "x3d_s", "x3d_m", "x3d_l"),
        ),
        Variant("no-channels-last", ("model.channels_last=false",), "activations in NCDHW"),
        Variant("batch16", ("data.batch_size=16",), "batch 16"),
        Variant(
            "cudagraphs",
            ("model.compile=true", "model.compile_mode=reduce-overhead"),
            "torch.compile with CUDA graphs (reduce-overhead)",
        ),
        Variant(
            "pointwise-matmul", ("model.pointwise_matmul=true",), "1x1x1 and kx1x1 convolutions as matrix multiplies"
        ),
        Variant(
            "pointwise-conv", ("model.pointwise_matmul=false",), "1x1x1 and kx1x1 convolutions as PyTorch's Conv3d"
        ),
        Variant(
            "depthwise-stock",
            ("model.depthwise_grad=false",),
            "depthwise convolutions' input gradient by PyTorch's backward",
            models=("x3d_xs", "x3d_s", "x3d_m", "x3d_l"),
        ),
        Variant("sgd-fused", ("optimizer=sgd",), "SGD (fused step) instead of the seed's ASGD"),
        Variant("workers-8", ("data.num_workers=8",), "8 loader workers"),
        Variant("prefetch-4", ("data.prefetch_factor=4",), "4 batches in flight per worker"),
        Variant("no-pin-memory", ("data.pin_memory=false",), "pageable batches"),
    )
}

GPU_DEFAULT = (
    "seed",
    "batch32",
    "fp32",
    "compile",
    "batch32+compile",
    "depthwise-fp32",
    "no-channels-last",
    "batch16",
    "pointwise-matmul",
    "fp32-ieee",
    "sgd-fused",
    "cudagraphs",
    "workers-8",
    "prefetch-4",
    "no-pin-memory",
)
CPU_DEFAULT = ("seed", "batch16", "no-channels-last", "pointwise-conv")
QUICK_DEFAULT = ("seed", "batch16")


def pick(names: list[str]) -> list[Variant]:
    """The named variants, seed first whether named or not."""
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    return [SEED] + [VARIANTS[name] for name in dict.fromkeys(names) if name != SEED.name]
