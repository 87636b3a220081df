"""The seed recipe's knobs: every parameter name a space file may use, with the seed's value.

A space file searches some of these; every other one keeps the seed's value, so a trial always
trains a complete recipe. The names are a contract shared by space files, `--set`, reports and
scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from search.errors import UsageError
from search.space import Choice, Fixed, Float, Int, Space

PIPELINES = ("cnn", "efficientnet")
METRICS = ("val_accuracy", "val_loss", "accuracy", "loss", "val_wild_accuracy")  # what a trial reports every epoch
BACKBONES = ("cnn",) + tuple(f"efficientnet_b{i}" for i in range(8)) + tuple(f"efficientnet_lite{i}" for i in range(5))
ACTIVATIONS = ("relu", "mish")
OPTIMIZERS = ("adam", "ranger")
LOSSES = ("ce", "ce_smooth", "focal", "sigmoid_focal")
LR_SCHEDULES = ("constant", "reduce_on_plateau", "triangular", "triangular2")
FLIPS = ("none", "horizontal", "vertical", "both")
OLD_FLIPS = {False: "none", True: "both"}  # `aug_flip` was a switch: older studies and spaces say True/False
LEAF_MASKS = ("none", "scratch", "lite0")  # no head, the scratch U-Net, the one on Lite0's ImageNet features
OLD_LEAF_MASKS = {False: "none", True: "scratch"}  # `leaf_mask` was a switch: older studies and spaces say True/False

# `augment`: the augmentation knobs below in a few named levels, which a space searches as one
# Choice. Trials with the same level draw the same augmented views of their cached features
# (training/feature_cache.py), so an EfficientNet study shares them across trials; every knob searched
# on its own gives hundreds of combinations, and each trial then builds views of its own.
# "custom" (the default) reads the knobs themselves. `aug_background` stays a knob of its own.
AUGMENT_KNOBS = ("aug_flip", "aug_rotation", "aug_zoom", "aug_contrast", "aug_crop", "aug_noise")
AUGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "none": dict(aug_flip="none", aug_rotation=0.0, aug_zoom=0.0, aug_contrast=0.0, aug_crop=0.0, aug_noise=0.0),
    # The seed's augmentation layers: flips, a rotation and a zoom of up to 10 %.
    "seed": dict(aug_flip="both", aug_rotation=0.1, aug_zoom=0.1, aug_contrast=0.0, aug_crop=0.0, aug_noise=0.0),
    # Its further attempt: RandomCrop (test images may be cropped) and GaussianNoise.
    "seed_crop_noise": dict(
        aug_flip="both", aug_rotation=0.1, aug_zoom=0.1, aug_contrast=0.0, aug_crop=0.1, aug_noise=0.05
    ),
    "strong": dict(aug_flip="both", aug_rotation=0.3, aug_zoom=0.2, aug_contrast=0.2, aug_crop=0.2, aug_noise=0.05),
}
AUGMENTS = ("custom", *AUGMENT_PRESETS)

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
    "augment": "custom",  # or a level of AUGMENT_PRESETS, which sets the six knobs below
    # The leaves' own flips: a leaf is a leaf upside down. For other data (digits, text, scenes)
    # a flip changes the class or the scene: name `aug_flip` in the space ("horizontal", "none").
    "aug_flip": "both",
    "aug_rotation": 0.1,
    "aug_zoom": 0.1,
    "aug_contrast": 0.0,
    "aug_crop": 0.0,
    "aug_noise": 0.0,
    "aug_background": 0.0,  # the share of training images that get a new background (0: off)
    "backgrounds": None,  # a folder of background photos (default: procedural backgrounds)
    # With `backgrounds`: the share of new backgrounds that are its photos, the rest procedural. Half
    # and half, the lite0 head found the leaf on photo composites as with photos alone (IoU 0.874
    # against 0.880) and on wild leaves better than with either (0.774, against 0.673 and 0.751;
    # medians of 5 seeds, bench/README.md). 1.0: photos alone, as before.
    "photo_share": 0.5,
    # Not the seed's: a segmentation head learns each leaf's mask from the black backgrounds and
    # blacks out the rest before the classifier; with aug_background. "scratch" (models/leaf_mask.py)
    # or "lite0", on EfficientNet-Lite0's ImageNet features (models/lite_mask_head.py).
    "leaf_mask": "none",
    # Not the seed's: batch-norm statistics recomputed before every validation (precise_bn.py), so
    # that short trials validate what they learned; False keeps Keras' moving averages.
    "precise_bn": True,
    # Not the seed's: an EfficientNet trial trains on its frozen part's cached features
    # (training/feature_cache.py), each training image stored as up to this many augmented views, one
    # drawn per epoch (`--no-feature-cache`: augmentation drawn anew every epoch); the first
    # `feature_plain_epochs` epochs of a cached phase train on the unaugmented features, which every
    # trial shares: a trial the pruner stops by then (its first rung: 2 epochs) builds no view.
    "feature_views": 4,
    "feature_plain_epochs": 2,
}

PIPELINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"backbone": "cnn"},
    "efficientnet": {"backbone": "efficientnet_b4", "batch_size": 32},
}

KNOWN_NAMES = frozenset(DEFAULTS)

# What only training reads, and what a trained model is rebuilt with instead (`evaluate`, `export`,
# `predict`): every weight comes from the checkpoint (no backbone weights to load, no ImageNet
# download), and augmentation is an identity outside training (no background photos to read:
# their folder may have moved since the study).
REBUILD: dict[str, Any] = {"weights": "none", "backgrounds": None}

# Knobs only one pipeline reads, and knobs read only under some values of another: the recipe a
# run prints leaves out what none of its trials reads.
_EFFICIENTNET_ONLY = (
    "backbone",
    "weights",
    "transfer_lr",
    "transfer_epochs",
    "finetune_lr",
    "finetune_epochs",
    "unfreeze_blocks",
    "feature_views",
    "feature_plain_epochs",
)
PIPELINE_ONLY = {"learning_rate": "cnn", "epochs": "cnn", **dict.fromkeys(_EFFICIENTNET_ONLY, "efficientnet")}
_FOCAL, _CYCLICAL = ("focal", "sigmoid_focal"), ("triangular", "triangular2")
READ_WHEN: dict[
    str, tuple[str, Callable[[Any], bool]]
] = {  # knob: (the knob it depends on, which of its values read it)
    "label_smoothing": ("loss", lambda loss: loss == "ce_smooth"),
    "focal_gamma": ("loss", lambda loss: loss in _FOCAL),
    "focal_alpha": ("loss", lambda loss: loss in _FOCAL),
    "plateau_factor": ("lr_schedule", lambda schedule: schedule == "reduce_on_plateau"),
    "plateau_patience": ("lr_schedule", lambda schedule: schedule == "reduce_on_plateau"),
    "clr_max_lr_factor": ("lr_schedule", lambda schedule: schedule in _CYCLICAL),
    "clr_step_epochs": ("lr_schedule", lambda schedule: schedule in _CYCLICAL),
    "finetune_lr": ("finetune_epochs", lambda epochs: epochs > 0),
    "unfreeze_blocks": ("finetune_epochs", lambda epochs: epochs > 0),
    "backgrounds": ("aug_background", lambda share: share > 0),
    "photo_share": ("backgrounds", lambda folder: folder is not None),
    **{knob: ("augment", lambda level: level == "custom") for knob in AUGMENT_KNOBS},
}
EPOCH_KNOBS = ("epochs", "transfer_epochs", "finetune_epochs")  # each capped at the study's max_epochs (phases.py)

_CHOICES = {
    "backbone": BACKBONES,
    "activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "loss": LOSSES,
    "lr_schedule": LR_SCHEDULES,
    "augment": AUGMENTS,
}


def resolve(params: Mapping[str, Any], pipeline: str) -> dict[str, Any]:
    """A trial's full recipe: the seed's defaults, the pipeline's, then the trial's values."""
    recipe = {**DEFAULTS, **PIPELINE_DEFAULTS[pipeline], **params}
    for name, allowed in _CHOICES.items():
        if recipe[name] not in allowed:
            raise UsageError(f"parameter `{name}`: {recipe[name]!r} is not one of {', '.join(allowed)}")
    if recipe["augment"] != "custom":
        named = [knob for knob in AUGMENT_KNOBS if knob in params]
        if named:
            raise UsageError(augment_conflict(named))
        recipe.update(AUGMENT_PRESETS[recipe["augment"]])
    problem = flip_problem(recipe["aug_flip"])
    if problem:
        raise UsageError(problem)
    recipe["aug_flip"] = OLD_FLIPS.get(recipe["aug_flip"], recipe["aug_flip"])
    problem = leaf_mask_problem(recipe["leaf_mask"]) or share_problem("photo_share", recipe["photo_share"])
    if problem:
        raise UsageError(problem)
    recipe["leaf_mask"] = OLD_LEAF_MASKS.get(recipe["leaf_mask"], recipe["leaf_mask"])
    is_cnn = recipe["backbone"] == "cnn"
    if is_cnn != (pipeline == "cnn"):
        raise UsageError(
            f"parameter `backbone`: {recipe['backbone']!r} does not fit the {pipeline!r} pipeline "
            f"(use backbone 'cnn' with pipeline 'cnn', efficientnet_b0..b7 or efficientnet_lite0..lite4 with 'efficientnet')"
        )
    return recipe


def augment_conflict(knobs: list[str]) -> str:
    return (
        f"parameter `{knobs[0]}`: `augment` sets {', '.join(AUGMENT_KNOBS)} from its levels; name either "
        f'`augment` or those knobs (`augment="custom"` reads the knobs; e.g. --set augment=none)'
    )


def flip_problem(value: Any) -> str | None:
    """What is wrong with an `aug_flip` value, if anything (True and False stand for both and none)."""
    if isinstance(value, bool) or (isinstance(value, str) and value in FLIPS):
        return None
    return f"parameter `aug_flip`: {value!r} is not one of {', '.join(FLIPS)} (or True/False: both/none)"


def leaf_mask_problem(value: Any) -> str | None:
    """What is wrong with a `leaf_mask` value, if anything (True and False stand for scratch and none)."""
    if isinstance(value, bool) or (isinstance(value, str) and value in LEAF_MASKS):
        return None
    return f"parameter `leaf_mask`: {value!r} is not one of {', '.join(LEAF_MASKS)} (or True/False: scratch/none)"


def share_problem(name: str, value: Any) -> str | None:
    """What is wrong with a share (a number from 0 to 1), if anything."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return None
    return f"parameter `{name}`: {value!r} is not a share; give a number from 0 to 1"


def rebuilt(params: Mapping[str, Any], pipeline: str) -> dict[str, Any]:
    """A trained trial's recipe to rebuild its model for a checkpoint: its own, less what only
    training reads (REBUILD)."""
    return {**resolve(params, pipeline), **REBUILD}


def fixed_part(space: Space, pipeline: str, max_epochs: int) -> dict[str, Any]:
    """What every trial of a study trains with that the space does not search (its Fixed values,
    the defaults for the rest), less the knobs no trial reads; epochs as capped by `max_epochs`.
    The defaults are the leaves' (flips, rotation, zoom): a run prints this so that they are seen."""
    searched = {name for name, param in space.items() if not isinstance(param, Fixed)}
    fixed = resolve({name: param.value for name, param in space.items() if name not in searched}, pipeline)

    def read_by_some_trial(name: str) -> bool:
        if PIPELINE_ONLY.get(name, pipeline) != pipeline:
            return False
        if name not in READ_WHEN:
            return True
        parent, reads = READ_WHEN[name]
        if parent not in searched:
            return reads(fixed[parent])
        offered = getattr(space[parent], "values", None)  # a range (None) may give any value
        return offered is None or any(reads(value) for value in offered)

    return {
        name: min(value, max_epochs) if name in EPOCH_KNOBS else value
        for name, value in fixed.items()
        if name not in searched and read_by_some_trial(name)
    }


def space_problems(space: Space, pipeline: str) -> list[str]:
    """Values a space offers for a categorical knob that the pipeline does not have, and knobs an
    `augment` level would set too."""
    out = []
    if "backbone" in space:
        for value in _offered(space["backbone"]):
            if value in BACKBONES and (value == "cnn") != (pipeline == "cnn"):
                out.append(f"parameter `backbone`: {value!r} does not fit the {pipeline!r} pipeline")
    for name, allowed in _CHOICES.items():
        if name not in space:
            continue
        for value in _offered(space[name]):
            if value not in allowed:
                out.append(f"parameter `{name}`: {value!r} is not one of {', '.join(allowed)}")
    named = [knob for knob in AUGMENT_KNOBS if knob in space]
    if named and "augment" in space and any(level != "custom" for level in _offered(space["augment"])):
        out.append(augment_conflict(named))
    if "aug_flip" in space:
        out.extend(problem for problem in map(flip_problem, _offered(space["aug_flip"])) if problem)
    if "leaf_mask" in space:
        out.extend(problem for problem in map(leaf_mask_problem, _offered(space["leaf_mask"])) if problem)
    if "photo_share" in space:
        param = space["photo_share"]
        bounds = (param.low, param.high) if isinstance(param, (Float, Int)) else _offered(param)
        out.extend(filter(None, (share_problem("photo_share", value) for value in bounds)))
    return out


def _offered(param: Any) -> tuple:
    """The values a Choice or Fixed offers (none for a range)."""
    if isinstance(param, Choice):
        return tuple(param.values)
    if isinstance(param, Fixed):
        return (param.value,)
    return ()
