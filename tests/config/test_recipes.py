"""A dataset sets data only; a recipe is an experiment: `experiment=demo` is the synthetic demo's, and
`experiment=grid` (`make sweep`) runs it over model x frames x split."""

from __future__ import annotations

from omegaconf import OmegaConf

DEMO_RECIPE = {
    "optimizer": ("torch.optim.AdamW", 2e-3, 0.0),
    "scheduler": "torch.optim.lr_scheduler.CosineAnnealingLR",
    "max_epochs": 5,
    "early_stopping": None,
    "dropout": 0.0,
    "test_views": (2, 1),
}


def recipe(cfg) -> dict:
    return {
        "optimizer": (cfg.optimizer._target_, cfg.optimizer.lr, cfg.optimizer.weight_decay),
        "scheduler": cfg.scheduler.scheduler._target_,
        "max_epochs": cfg.trainer.max_epochs,
        "early_stopping": cfg.callbacks.early_stopping,
        "dropout": cfg.model.dropout,
        "test_views": (cfg.test.temporal_views, cfg.test.spatial_crops),
    }


def outside_data(cfg) -> dict:
    values = OmegaConf.to_container(cfg, resolve=False)
    values.pop("data", None)
    return values


def test_choosing_a_dataset_changes_nothing_outside_data(compose_config):
    without = compose_config(["~data"])
    assert "data" not in without
    for overrides in ([], ["data=synthetic"], ["experiment=grid", "data=synthetic"], ["data=ucf101"]):
        with_data = compose_config(overrides)
        assert with_data.data.name == (overrides[-1].split("=")[1] if overrides else "synthetic")
        reference = compose_config([*overrides[:-1], "~data"]) if overrides else without
        assert outside_data(with_data) == outside_data(reference), overrides


def test_the_grid_of_make_sweep_is_the_demo_recipe_on_the_synthetic_data(compose_config):
    for experiment in ("demo", "grid", "seed_grid"):
        cfg = compose_config([f"experiment={experiment}"])
        assert cfg.data.name == "synthetic", experiment
        assert recipe(cfg) == DEMO_RECIPE, experiment


def test_without_an_experiment_the_recipe_is_the_seeds_whichever_the_data(compose_config):
    synthetic = recipe(compose_config([]))
    assert recipe(compose_config(["data=ucf101", "data.root=/data/ucf101"])) == synthetic
    assert synthetic["optimizer"] == ("torch.optim.ASGD", 1e-2, 0.0) and synthetic["max_epochs"] == 20
    assert synthetic["early_stopping"]["monitor"] == "val/top1"


def test_the_ucf101_recipe_is_the_seeds_from_kinetics_weights_with_10x3_views(compose_config):
    cfg = compose_config(["experiment=ucf101", "data.root=/data/ucf101"])
    assert cfg.data.name == "ucf101" and cfg.model.pretrained == "kinetics400"
    assert recipe(cfg) == {**recipe(compose_config([])), "test_views": (10, 3)}


def test_the_published_protocol_replaces_a_recipes_evaluation(compose_config):
    cfg = compose_config(["experiment=demo", "protocol=paper", "model=x3d_m"])
    assert (cfg.test.temporal_views, cfg.test.spatial_crops) == (10, 3)
    assert (cfg.frames, cfg.data.stride, cfg.data.val_groups_per_class) == (16, 5, 0)
    assert cfg.optimizer.lr == 2.0e-3, "the recipe's training settings stay"
