"""The optimizer a phase compiles with: Adam or Ranger, at a constant or a cyclical learning rate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from leafsearch.training.ranger import Ranger
from leafsearch.training.schedules import Triangular2CyclicalLearningRate, TriangularCyclicalLearningRate


def make_optimizer(recipe: Mapping[str, Any], learning_rate: float, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam or Ranger, with a constant or triangular cyclical learning rate (its cycle in epochs,
    hence `steps_per_epoch`). The plateau schedule is a callback, not a rate: see callbacks/resumable.py."""
    rate: Any = learning_rate
    schedule = recipe["lr_schedule"]
    if schedule in ("triangular", "triangular2"):
        cls = TriangularCyclicalLearningRate if schedule == "triangular" else Triangular2CyclicalLearningRate
        rate = cls(
            initial_learning_rate=learning_rate,
            maximal_learning_rate=learning_rate * recipe["clr_max_lr_factor"],
            step_size=max(1, round(recipe["clr_step_epochs"] * steps_per_epoch)),
        )
    if recipe["optimizer"] == "ranger":
        return Ranger(learning_rate=rate)
    return keras.optimizers.Adam(learning_rate=rate)
