"""Fine-tuning controls: a frozen backbone (linear probe) and the classifier's own learning rate."""

import inspect

import pytest
import torch
from omegaconf import OmegaConf

from ar_experiments.training.module import VideoClassifier

OPTIMIZERS = ["asgd", "sgd", "adamw"]


def classifier(compose_config, *overrides: str) -> VideoClassifier:
    cfg = compose_config(["model=x3d_m", "frames=4", "scheduler=step", *overrides])
    return VideoClassifier(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        class_names=["a", "b", "c"],
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
    )


def optimizer_of(module: VideoClassifier) -> torch.optim.Optimizer:
    configured = module.configure_optimizers()
    return configured["optimizer"] if isinstance(configured, dict) else configured


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_the_classifier_trains_at_lr_times_head_lr_mult(compose_config, optimizer):
    module = classifier(compose_config, f"optimizer={optimizer}", "optimizer.head_lr_mult=10")
    lr = module.hparams.optimizer["lr"]
    groups = optimizer_of(module).param_groups
    assert [group["lr"] for group in groups] == pytest.approx([lr, 10 * lr])
    head = {id(p) for p in module.net.net.blocks[-1].proj.parameters()}
    assert {id(p) for p in groups[1]["params"]} == head
    assert sum(len(group["params"]) for group in groups) == len(list(module.parameters()))


def test_one_cycle_schedule_keeps_the_classifier_lr_multiple(compose_config):
    module = classifier(compose_config, "scheduler=onecycle", "optimizer.head_lr_mult=10")
    module.trainer = type("FitStub", (), {"estimated_stepping_batches": 100})()
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    peak = [group["max_lr"] for group in optimizer.param_groups]
    assert peak == pytest.approx([module.hparams.optimizer["lr"], 10 * module.hparams.optimizer["lr"]])
    assert scheduler.total_steps == 100


@pytest.mark.parametrize(("optimizer", "cycles_momentum"), [("asgd", False), ("sgd", True), ("adamw", True)])
def test_one_cycle_runs_with_every_optimizer_and_cycles_momentum_where_there_is_one(
    compose_config, optimizer, cycles_momentum
):
    module = classifier(compose_config, "scheduler=onecycle", f"optimizer={optimizer}")
    module.trainer = type("FitStub", (), {"estimated_stepping_batches": 100})()
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert scheduler.cycle_momentum is cycles_momentum


def test_every_optimizer_config_defaults_to_one_learning_rate(compose_config):
    for optimizer in OPTIMIZERS:
        module = classifier(compose_config, f"optimizer={optimizer}")
        assert module.hparams.optimizer["head_lr_mult"] == 1.0
        assert len({group["lr"] for group in optimizer_of(module).param_groups}) == 1


def test_a_frozen_backbone_keeps_its_weights_and_batchnorm_statistics(compose_config):
    torch.manual_seed(0)
    module = classifier(compose_config, "model.freeze_backbone=true", "model.dropout=0.5", "optimizer=sgd")
    optimizer = optimizer_of(module)
    assert [len(group["params"]) for group in optimizer.param_groups] == [2]  # the classifier's weight and bias
    module.train()
    norms = [m for m in module.net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert module.net.net.blocks[-1].dropout.training  # the head's dropout still regularises
    before = {k: v.clone() for k, v in module.net.net.state_dict().items()}
    loss = torch.nn.functional.cross_entropy(module(torch.randn(4, 3, 4, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    after = module.net.net.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"blocks.5.proj.weight", "blocks.5.proj.bias"}


def test_without_freezing_batchnorm_trains(compose_config):
    module = classifier(compose_config)
    module.train()
    assert all(m.training for m in module.net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fused_optimizers_update_the_weights_as_the_reference_loop_does(compose_config, optimizer):
    torch.manual_seed(0)
    module = classifier(compose_config, f"optimizer={optimizer}")
    fused = optimizer_of(module)
    assert fused.defaults["fused"]  # the config asks for the one-kernel step (4x faster on CPU)
    accepted = inspect.signature(type(fused)).parameters
    settings = {k: v for k, v in fused.defaults.items() if k in accepted and k != "fused"}
    copies = [
        {**g, "params": [p.detach().clone().requires_grad_(True) for p in g["params"]]} for g in fused.param_groups
    ]
    reference = type(fused)(copies, **settings, fused=False)
    for _ in range(3):
        for group, ref_group in zip(fused.param_groups, reference.param_groups):
            for p, q in zip(group["params"], ref_group["params"]):
                p.grad = torch.randn_like(p)
                q.grad = p.grad.clone()
        fused.step()
        reference.step()
    for group, ref_group in zip(fused.param_groups, reference.param_groups):
        for p, q in zip(group["params"], ref_group["params"]):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
