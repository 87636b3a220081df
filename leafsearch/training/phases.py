"""A trial's model and the phases it trains in: one `fit` each, epochs counted across them.

The CNN trains in one phase. EfficientNet trains in two: transfer learning (only the head, on
the frozen backbone), then fine-tuning (the backbone's last blocks too, with a small learning
rate). The model is built once per trial, so the second phase starts from the first's weights.
`build_model` is the one place that decides this, for training and for `evaluate`/`export`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import keras

from leafsearch.models.cnn import build_cnn
from leafsearch.models.efficientnet import (
    build_efficientnet,
    check_unfreeze_blocks,
    freeze_backbone,
    unfreeze_top_blocks,
)


@dataclasses.dataclass
class Phase:
    """One `fit` of a trial: its learning rate, its epochs, and what to change in the model first."""

    name: str
    learning_rate: float
    epochs: int
    prepare: Callable[[keras.Model], None] | None = None


def efficientnet_phases(recipe: Mapping[str, Any], max_epochs: int) -> list[Phase]:
    """Transfer learning then fine-tuning, each capped at `max_epochs`; a bad `unfreeze_blocks`
    fails here rather than after phase 1 has trained."""
    blocks = recipe["unfreeze_blocks"]
    check_unfreeze_blocks(blocks)
    return [
        Phase("transfer", recipe["transfer_lr"], min(recipe["transfer_epochs"], max_epochs), prepare=freeze_backbone),
        Phase(
            "finetune",
            recipe["finetune_lr"],
            min(recipe["finetune_epochs"], max_epochs),
            prepare=lambda model: unfreeze_top_blocks(model, blocks),
        ),
    ]


def build_model(
    pipeline: str, recipe: Mapping[str, Any], num_classes: int, seed: int, max_epochs: int
) -> tuple[keras.Model, list[Phase]]:
    """The model of `pipeline` ("cnn" or "efficientnet") for a resolved recipe, and its phases."""
    if pipeline == "efficientnet":
        return build_efficientnet(recipe, num_classes, seed), efficientnet_phases(recipe, max_epochs)
    epochs = min(recipe["epochs"], max_epochs)
    return build_cnn(recipe, num_classes, seed), [Phase("train", recipe["learning_rate"], epochs)]
