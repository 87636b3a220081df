"""The leafsearch objective: one trial = build the recipe's model, train it phase by phase, report.

`LeafObjective(params, reporter)` is what every engine calls. Epochs are counted across the
training phases, so a pruner sees one continuous curve.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import keras

from leafsearch import data as leafdata
from leafsearch.cnn import build_cnn
from leafsearch.losses import make_loss
from leafsearch.ranger import Ranger
from leafsearch.recipe import resolve
from leafsearch.schedules import Triangular2CyclicalLearningRate, TriangularCyclicalLearningRate
from search.errors import TrialPruned
from search.reporter import Reporter, summarise


@dataclasses.dataclass
class Phase:
    """One `fit` of a trial: its learning rate, its epochs, and what to change in the model first."""

    name: str
    learning_rate: float
    epochs: int
    prepare: Callable[[keras.Model], None] | None = None


class ReporterCallback(keras.callbacks.Callback):
    """Sends each epoch's logs to the reporter and stops training when the engine prunes."""

    def __init__(self, reporter: Reporter, epoch_offset: int):
        super().__init__()
        self.reporter = reporter
        self.epoch_offset = epoch_offset
        self.pruned = False
        self.epochs_done = 0

    def on_train_begin(self, logs=None):
        self.pruned = False
        self.epochs_done = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if not k.startswith("learning_rate")}
        if "loss" in logs and not math.isfinite(logs["loss"]):
            self.model.stop_training = True
            raise FloatingPointError("nan loss")
        self.reporter.report(self.epoch_offset + epoch, logs)
        self.epochs_done = epoch + 1
        if self.reporter.should_prune():
            self.pruned = True
            self.model.stop_training = True


def make_optimizer(recipe: Mapping[str, Any], learning_rate: float, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam or Ranger, with a constant or triangular cyclical learning rate."""
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


def phase_callbacks(recipe: Mapping[str, Any], monitor: str, mode: str) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=recipe["patience"], restore_best_weights=True),
    ]
    if recipe["lr_schedule"] == "reduce_on_plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, mode=mode, factor=recipe["plateau_factor"], patience=recipe["plateau_patience"]
            )
        )
    return callbacks


class LeafObjective:
    """Trains the leaf pipeline for one trial's parameters; shared by every engine.

    Decoded images are kept per image size, so trials after the first pay no decoding.
    """

    def __init__(
        self,
        data_root: Path,
        pipeline: str,
        max_epochs: int,
        cache_dir: Path | None,
        metric: str = "val_accuracy",
        direction: str = "maximize",
        split_seed: int = 0,
    ):
        self.data_root = Path(data_root)
        self.pipeline = pipeline
        self.max_epochs = max_epochs
        self.cache_dir = cache_dir
        self.metric = metric
        self.direction = direction
        self.split_seed = split_seed
        self._data: dict[int, leafdata.LeafData] = {}

    def data(self, image_size: int) -> leafdata.LeafData:
        if image_size not in self._data:
            self._data[image_size] = leafdata.prepare(self.data_root, image_size, cache_dir=self.cache_dir, seed=self.split_seed)
        return self._data[image_size]

    def build(self, recipe: Mapping[str, Any], num_classes: int, seed: int) -> tuple[keras.Model, list[Phase]]:
        """The model and its training phases for this recipe."""
        if self.pipeline == "efficientnet":
            from leafsearch.efficientnet import build_efficientnet, efficientnet_phases  # imports training

            return build_efficientnet(recipe, num_classes, seed), efficientnet_phases(recipe, self.max_epochs)
        epochs = min(recipe["epochs"], self.max_epochs)
        return build_cnn(recipe, num_classes, seed), [Phase("train", recipe["learning_rate"], epochs)]

    def __call__(self, params: Mapping[str, Any], reporter: Reporter) -> dict[str, float]:
        recipe = resolve(params, self.pipeline)
        seed = getattr(reporter, "seed", 0)
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        data = self.data(recipe["image_size"])
        num_classes = len(data.class_names)
        batch_size = recipe["batch_size"]
        train = leafdata.make_tf_dataset(data.images, data.labels, data.train_idx, num_classes, batch_size, shuffle=True, seed=seed)
        val = leafdata.make_tf_dataset(data.images, data.labels, data.val_idx, num_classes, batch_size, shuffle=False, seed=seed)
        class_weight = leafdata.class_weights(data.labels[data.train_idx], num_classes) if recipe["class_weights"] else None
        steps_per_epoch = math.ceil(len(data.train_idx) / batch_size)

        model, phases = self.build(recipe, num_classes, seed)
        mode = "max" if self.direction == "maximize" else "min"
        epoch_offset = 0
        for phase in phases:
            if phase.epochs <= 0:
                continue
            if phase.prepare is not None:
                phase.prepare(model)
            model.compile(
                optimizer=make_optimizer(recipe, phase.learning_rate, steps_per_epoch),
                loss=make_loss(recipe["loss"], recipe["label_smoothing"], recipe["focal_gamma"], recipe["focal_alpha"]),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            )
            reporting = ReporterCallback(reporter, epoch_offset)
            model.fit(
                train,
                validation_data=val,
                epochs=phase.epochs,
                class_weight=class_weight,
                shuffle=False,  # the dataset shuffles itself, seeded
                callbacks=[reporting, *phase_callbacks(recipe, self.metric, mode)],
                verbose=0,
            )
            epoch_offset += reporting.epochs_done
            if reporting.pruned:
                raise TrialPruned(f"pruned after epoch {epoch_offset}")
        summary = summarise(reporter.history, self.metric, self.direction)
        return {k: v for k, v in summary.items() if v is not None}
