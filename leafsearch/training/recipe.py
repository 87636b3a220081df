"""The seed recipe's knobs: every parameter name a space file may use, with the seed's value.

A space file searches some of these; every other one keeps the seed's value, so a trial always
trains a complete recipe. The names are a contract shared by space files, `--set`, reports and
scripts.
"""

from __future__ import annotations

from typing import Any, Mapping

from search.errors import UsageError
from search.space import Choice, Fixed, Space

PIPELINES = ("cnn", "efficientnet")
METRICS = ("val_accuracy", "val_loss", "accuracy", "loss", "val_wild_accuracy")  # what a trial reports every epoch
BACKBONES = ("cnn",) + tuple(f"efficientnet_b{i}" for i in range(8)) + tuple(f"efficientnet_lite{i}" for i in range(5))
ACTIVATIONS = ("relu", "mish")
OPTIMIZERS = ("adam", "ranger")
LOSSES = ("ce", "ce_smooth", "focal", "sigmoid_focal")
LR_SCHEDULES = ("constant", "reduce_on_plateau", "triangular", "triangular2")

# The seed report's choices (see ../shared/seed): the baseline every space starts from.
DEFAULTS: dict[str, Any] = {
    "backbone": "cnn",
    "weights": "imagenet",
    "image_size": 256,
    "batch_size": 64,
    "activation": "relu",
    "dense_units": 512,
    "dropout": 0.3,
    "optimizer": "adam",
    "loss": "ce",
    "label_smoothing": 0.1,
    "focal_gamma": 2.0,
    "focal_alpha": 0.25,
    "lr_schedule": "constant",
    "plateau_factor": 0.2,
    "plateau_patience": 3,
    "clr_max_lr_factor": 10.0,
    "clr_step_epochs": 2,
    "learning_rate": 1e-3,
    "transfer_lr": 1e-2,
    "finetune_lr": 1e-4,
    "transfer_epochs": 10,
    "finetune_epochs": 35,
    "epochs": 100,
    "unfreeze_blocks": 1,
    "patience": 10,
    "class_weights": False,
    "aug_flip": True,
    "aug_rotation": 0.1,
    "aug_zoom": 0.1,
    "aug_contrast": 0.0,
    "aug_crop": 0.0,
    "aug_noise": 0.0,
    "aug_background": 0.0,  # the share of training images that get a new background (0: off)
    "backgrounds": None,  # a folder of background photos (default: procedural backgrounds)
    # Not the seed's: a segmentation head learns each leaf's mask from the black backgrounds and
    # blacks out the rest before the classifier (models/leaf_mask.py); with aug_background.
    "leaf_mask": False,
    # Not the seed's: batch-norm statistics recomputed before every validation (precise_bn.py), so
    # that short trials validate what they learned; False keeps Keras' moving averages.
    "precise_bn": True,
}

PIPELINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"backbone": "cnn"},
    "efficientnet": {"backbone": "efficientnet_b4", "batch_size": 32},
}

KNOWN_NAMES = frozenset(DEFAULTS)

_CHOICES = {
    "backbone": BACKBONES,
    "activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "loss": LOSSES,
    "lr_schedule": LR_SCHEDULES,
}


def resolve(params: Mapping[str, Any], pipeline: str) -> dict[str, Any]:
    """A trial's full recipe: the seed's defaults, the pipeline's, then the trial's values."""
    recipe = {**DEFAULTS, **PIPELINE_DEFAULTS[pipeline], **params}
    for name, allowed in _CHOICES.items():
        if recipe[name] not in allowed:
            raise UsageError(f"parameter `{name}`: {recipe[name]!r} is not one of {', '.join(allowed)}")
    is_cnn = recipe["backbone"] == "cnn"
    if is_cnn != (pipeline == "cnn"):
        raise UsageError(
            f"parameter `backbone`: {recipe['backbone']!r} does not fit the {pipeline!r} pipeline "
            f"(use backbone 'cnn' with pipeline 'cnn', efficientnet_b0..b7 or efficientnet_lite0..lite4 with 'efficientnet')"
        )
    return recipe


def space_problems(space: Space, pipeline: str) -> list[str]:
    """Values a space offers for a categorical knob that the pipeline does not have."""
    out = []
    if "backbone" in space:
        offered = space["backbone"].values if isinstance(space["backbone"], Choice) else (getattr(space["backbone"], "value", None),)
        for value in offered:
            if value in BACKBONES and (value == "cnn") != (pipeline == "cnn"):
                out.append(f"parameter `backbone`: {value!r} does not fit the {pipeline!r} pipeline")
    for name, allowed in _CHOICES.items():
        if name not in space:
            continue
        param = space[name]
        offered = param.values if isinstance(param, Choice) else (param.value,) if isinstance(param, Fixed) else ()
        for value in offered:
            if value not in allowed:
                out.append(f"parameter `{name}`: {value!r} is not one of {', '.join(allowed)}")
    return out
