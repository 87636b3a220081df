"""The epoch loop of one trial: phase after phase, a checkpoint after every epoch, continuing
from the checkpoint it finds.

Epochs are counted across the training phases, so a pruner sees one continuous curve. Every
epoch ends with a checkpoint in the reporter's `checkpoint_dir` (weights, optimizer state, phase
and epoch, callback counters, the batch size, the history so far). A trial that finds a
checkpoint there continues from it, so an interrupted trial loses at most the epoch in flight.

The loop knows the trial's setup (data, model, metric) only through `TrialSetup`, the few things
it asks of `LeafObjective`; so the objective imports the loop, never the other way round.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from leafsearch.data import LeafData, class_weights
from leafsearch.data.batches import make_batches
from leafsearch.data.masks import MarkedImages, with_backgrounds
from leafsearch.models import costs
from leafsearch.training.losses import make_loss
from leafsearch.training.optimizers import make_optimizer
from leafsearch.training.phases import Phase
from leafsearch.training.precise_bn import PreciseBatchNorm
from leafsearch.training.tensorboard_log import HParamsLogger
from search.errors import TrialFailed, TrialPruned
from search.records import costs as cost_record
from search.records.checkpoints import CheckpointStore
from search.records.files import write_json_atomic
from search.reporter import Reporter

WEIGHTS = "model.weights.h5"
CLASSES = "classes.json"  # in the trial folder: the class names, in the order of the model's outputs


class ReporterCallback(keras.callbacks.Callback):
    """Sends each epoch's logs to the reporter and stops training when the engine prunes.

    `epoch_offset` turns the phase's epoch numbers into the trial's (counted across phases)."""

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
            raise TrialFailed("nan loss")
        self.reporter.report(self.epoch_offset + epoch, logs)
        self.epochs_done += 1
        if self.reporter.should_prune():
            self.pruned = True
            self.model.stop_training = True


class _ResumableState:
    """A Keras callback whose counters (patience waited, best value) survive a resume: they are
    saved in each checkpoint and set back after Keras resets them in `on_train_begin`."""

    STATE: tuple[str, ...] = ()

    def __init__(self, *args, state: Mapping[str, Any] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_state = dict(state or {})

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for name, value in self.resume_state.items():
            setattr(self, name, value)

    def state(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.STATE}


class ResumableEarlyStopping(_ResumableState, keras.callbacks.EarlyStopping):
    STATE = ("wait", "best", "best_epoch")


class ResumableReduceLROnPlateau(_ResumableState, keras.callbacks.ReduceLROnPlateau):
    STATE = ("wait", "best", "cooldown_counter")


def _plain(value: Any) -> Any:
    return None if value is None else float(value) if not isinstance(value, int) else value


class WildValidation(keras.callbacks.Callback):
    """Adds `val_wild_accuracy` to each epoch's logs: the accuracy on the validation images with
    their black backgrounds replaced, the same replacement for every trial of a study (fixed by
    image and split seed), so that a study can choose its trials by how they do off the black
    background. Runs before the callbacks that read the logs (reporter, early stopping)."""

    METRIC = "val_wild_accuracy"

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size

    @classmethod
    def of(cls, data: LeafData, batch_size: int, seed: int) -> WildValidation:
        return cls(with_backgrounds(data.images[data.val_idx], seed), data.labels[data.val_idx], batch_size)

    def on_epoch_end(self, epoch, logs=None):
        predicted = self.model.predict(self.images, batch_size=self.batch_size, verbose=0).argmax(axis=1)
        if logs is not None:
            logs[self.METRIC] = float(np.mean(predicted == self.labels))


class CheckpointCallback(keras.callbacks.Callback):
    """Writes the trial's checkpoint at the end of every epoch (after the other callbacks, so
    their counters and the learning rate they set are in it)."""

    def __init__(self, save: Callable[[int, bool], None], reporting: ReporterCallback):
        super().__init__()
        self.save = save
        self.reporting = reporting

    def on_epoch_end(self, epoch, logs=None):
        if not self.reporting.pruned:
            self.save(epoch + 1, bool(self.model.stop_training))


def phase_callbacks(
    recipe: Mapping[str, Any], monitor: str, mode: str, state: Mapping[str, Any] | None = None
) -> list[keras.callbacks.Callback]:
    """Early stopping (and the plateau schedule), with their counters from `state` on a resume.
    The best weights of a phase are restored from its best checkpoint, not kept in memory."""
    state = state or {}
    callbacks: list[keras.callbacks.Callback] = [
        ResumableEarlyStopping(
            monitor=monitor, mode=mode, patience=recipe["patience"], state=state.get("early_stopping")
        ),
    ]
    if recipe["lr_schedule"] == "reduce_on_plateau":
        callbacks.append(
            ResumableReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=recipe["plateau_factor"],
                patience=recipe["plateau_patience"],
                state=state.get("plateau"),
            )
        )
    return callbacks


def callback_states(callbacks: list[keras.callbacks.Callback]) -> dict[str, Any]:
    names = {ResumableEarlyStopping: "early_stopping", ResumableReduceLROnPlateau: "plateau"}
    return {names[type(c)]: c.state() for c in callbacks if type(c) in names}


def save_training_state(model: keras.Model, folder: Path) -> None:
    """Weights and optimizer state (moments, step count, learning rate): Keras writes the compiled
    optimizer's variables into the same weights file."""
    model.save_weights(folder / WEIGHTS)


def build_optimizer(model: keras.Model) -> None:
    """Create the compiled optimizer's variables (moments, step count) before `fit`. Without a
    distribution strategy, Keras' TensorFlow trainer defers this to the first trace of the train
    step (`_maybe_symbolic_build`); a `tf.function` that creates variables on its first trace is
    traced a second time, so every trial paid for two traces. Built here, the train step is traced
    once: the first epoch of the CNN loses 1.2 s of its 2.9 s trace (Adam) or 4.4 s of 7 s
    (Ranger), measured in bench/README.md (cold_start.py)."""
    model.optimizer.build(model.trainable_variables)


def load_training_state(model: keras.Model, folder: Path) -> None:
    """The inverse of `save_training_state`, on a model compiled for the same phase (its
    optimizer is built first, so that Keras loads the optimizer's variables too)."""
    build_optimizer(model)
    model.load_weights(folder / WEIGHTS)


def load_weights_only(model: keras.Model, folder: Path) -> None:
    """The model's weights of a checkpoint (a phase's best), not its optimizer's: the next phase
    compiles an optimizer of its own."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(folder / WEIGHTS)


class TrialSetup(Protocol):
    """What the loop needs of the trial's setup (`LeafObjective` provides it): the study's metric
    and its direction, the data at an image size, the model and phases of a recipe, and the folder
    where model costs are cached."""

    metric: str
    direction: str
    cache_dir: Path | None
    split_seed: int  # fixes the validation copy `val_wild_accuracy` is measured on

    def data(self, image_size: int) -> LeafData: ...

    def build(self, recipe: Mapping[str, Any], num_classes: int, seed: int) -> tuple[keras.Model, list[Phase]]: ...


class TrialTraining:
    """One trial's training: phase after phase, checkpointing every epoch, continuing from the
    checkpoint it finds."""

    def __init__(
        self,
        objective: TrialSetup,
        recipe: Mapping[str, Any],
        reporter: Reporter,
        tensorboard: HParamsLogger | None = None,
    ):
        self.objective = objective
        self.recipe = recipe
        self.reporter = reporter
        self.tensorboard = tensorboard
        self.store = CheckpointStore(reporter.checkpoint_dir)
        self.mode = "max" if objective.direction == "maximize" else "min"
        self.batch_size = recipe["batch_size"]  # until `run` reads a continued trial's own

    def best_epoch(self, since: int = 0) -> int | None:
        """The trial's best epoch by the study's metric (among epochs >= `since`)."""
        metric = self.objective.metric
        rows = [r for r in self.reporter.history if r["epoch"] >= since and math.isfinite(r.get(metric, math.nan))]
        if not rows:
            return None
        pick = max if self.mode == "max" else min
        return int(pick(rows, key=lambda r: r[metric])["epoch"])

    def run(self) -> None:
        """Train, then (unless the costs came first) measure the model of a trial that trained to
        its end: a pruned trial is nobody's pick, and measuring costs a CNN trial 0.6 s."""
        model, data = self.train()
        if not self.reporter.costs_first:
            self.measure_costs(model, data)

    def train(self) -> tuple[keras.Model, LeafData]:
        recipe, reporter = self.recipe, self.reporter
        seed = reporter.seed
        fresh_session()
        keras.utils.set_random_seed(seed)
        resumed = self.store.latest()
        state = resumed[1] if resumed else None
        if state is not None:
            reporter.restore(state["history"])
        done = len(reporter.history)  # epochs trained so far, across phases
        data = self.objective.data(recipe["image_size"])
        num_classes = len(data.class_names)
        # A continued trial keeps the batch size it was trained with (half the sampled one after an
        # out-of-memory retry).
        batch_size = state.get("batch_size", recipe["batch_size"]) if state is not None else recipe["batch_size"]
        self.batch_size = batch_size  # what every checkpoint of this run records
        # A continued trial draws new shuffles rather than replaying the first epochs' order.
        # Background replacement finds the background in-band: the training images go marked.
        marked = recipe["aug_background"] > 0 or recipe["leaf_mask"]
        train_images = MarkedImages(data.images) if marked else data.images
        train = make_batches(
            train_images, data.labels, data.train_idx, num_classes, batch_size, shuffle=True, seed=seed + done
        )
        wild = (
            WildValidation.of(data, batch_size, self.objective.split_seed)
            if self.objective.metric == WildValidation.METRIC
            else None
        )
        val = make_batches(data.images, data.labels, data.val_idx, num_classes, batch_size, shuffle=False, seed=seed)
        precise = PreciseBatchNorm(train_images, data.train_idx, batch_size, seed) if recipe["precise_bn"] else None
        class_weight = class_weights(data.labels[data.train_idx], num_classes) if recipe["class_weights"] else None
        steps_per_epoch = math.ceil(len(data.train_idx) / batch_size)
        model, phases = self.objective.build(recipe, num_classes, seed)
        self.record_model(model, data)

        first_phase = 0
        if state is not None:
            first_phase = state["phase"] + (1 if state["phase_done"] else 0)
        budget = reporter.epoch_budget
        for index, phase in enumerate(phases):
            if index < first_phase or phase.epochs <= 0:
                continue
            if budget is not None and done >= budget:
                return model, data
            continuing = state is not None and index == state["phase"] and not state["phase_done"]
            phase_epoch = state["phase_epoch"] if continuing else 0
            phase_start = done - phase_epoch  # the trial epoch at which this phase began
            if phase.prepare is not None:
                phase.prepare(model)
            if state is not None and index == first_phase and not continuing:  # the finished phase's best
                best = state["phase_best"]
                load_weights_only(model, resumed[0] if best is None else self.store.path(best))
            model.compile(
                optimizer=make_optimizer(recipe, phase.learning_rate, steps_per_epoch),
                loss=make_loss(recipe["loss"], recipe["label_smoothing"], recipe["focal_gamma"], recipe["focal_alpha"]),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            )
            if continuing:
                load_training_state(model, resumed[0])
            else:
                build_optimizer(model)
            last_epoch = phase.epochs if budget is None else min(phase.epochs, phase_epoch + budget - done)
            reporting = ReporterCallback(reporter, phase_start)
            others = phase_callbacks(recipe, self.objective.metric, self.mode, state if continuing else None)
            if self.tensorboard is not None:
                self.tensorboard.epoch_offset = phase_start
                others.append(self.tensorboard)

            def save(
                phase_epochs_done: int, stopping: bool, index=index, phase=phase, phase_start=phase_start, others=others
            ):
                self.save(model, index, phase, phase_start, phase_epochs_done, stopping, others)

            model.fit(
                train,
                validation_data=val,
                initial_epoch=phase_epoch,
                epochs=last_epoch,
                class_weight=class_weight,
                shuffle=False,  # the dataset shuffles itself, seeded
                callbacks=[
                    *([precise] if precise else []),
                    *([wild] if wild else []),
                    reporting,
                    *others,
                    CheckpointCallback(save, reporting),
                ],
                verbose=0,
            )
            done += reporting.epochs_done
            if reporting.pruned:
                raise TrialPruned(f"pruned after epoch {done}")
            finished = reporting.epochs_done < last_epoch - phase_epoch or last_epoch >= phase.epochs
            if not finished:  # stopped by the engine's epoch budget
                return model, data
            best = self.best_epoch(since=phase_start)
            if best is not None and best != done - 1 and self.store.load(best) is not None:
                load_weights_only(model, self.store.path(best))  # the next phase starts from the best
            state = None
        return model, data

    def record_model(self, model: keras.Model, data: LeafData) -> None:
        """What `evaluate`, `export` and `predict` need besides the weights (the class names), and
        the model's parameter count for the leaderboard (free). A study that bounds or optimises a
        cost measures all of it here, before the first epoch (costs.py says what that costs), so
        that a model breaking a bound stops before it trains."""
        trial_dir = self.reporter.trial_dir
        write_json_atomic(trial_dir / CLASSES, list(data.class_names))
        if self.reporter.costs_first:
            self.measure_costs(model, data)
            self.reporter.measured(cost_record.read(trial_dir))
        elif not (trial_dir / cost_record.FILE).exists():
            cost_record.write(trial_dir, {"params": costs.parameter_count(model)})

    def measure_costs(self, model: keras.Model, data: LeafData) -> None:
        """The model's costs (parameters, FLOPs, inference time), once per trial and per
        architecture (cached)."""
        trial_dir = self.reporter.trial_dir
        if "infer_ms" not in cost_record.read(trial_dir):
            sample = data.images[sorted(data.val_idx[: costs.BATCH])]
            cost_record.write(trial_dir, costs.measure_cached(model, sample, self.objective.cache_dir))

    def save(
        self,
        model: keras.Model,
        index: int,
        phase: Phase,
        phase_start: int,
        phase_epochs_done: int,
        stopping: bool,
        callbacks: list[keras.callbacks.Callback],
    ) -> None:
        epoch = len(self.reporter.history) - 1
        best, phase_best = self.best_epoch(), self.best_epoch(since=phase_start)
        state = {
            "phase": index,
            "phase_name": phase.name,
            "phase_epoch": phase_epochs_done,
            "phase_done": stopping or phase_epochs_done >= phase.epochs,
            "seed": self.reporter.seed,
            "batch_size": self.batch_size,  # the one trained with, not the recipe's (halved after an OOM)
            "best": best,
            "phase_best": phase_best,
            "history": self.reporter.history,
            **callback_states(callbacks),
        }
        keep = {e for e in (best, phase_best) if e is not None}
        self.store.save(epoch, lambda folder: save_training_state(model, folder), state, keep=keep)


def fresh_session() -> None:
    """Keras' global state cleared for a new model, the dtype policy kept: `clear_session` resets
    it to float32, which would train every trial in float32 whatever `--precision` chose."""
    policy = keras.mixed_precision.dtype_policy()
    keras.backend.clear_session()
    keras.mixed_precision.set_dtype_policy(policy)


def is_out_of_memory(exc: BaseException) -> bool:
    """TensorFlow's ResourceExhaustedError, or the RESOURCE_EXHAUSTED status other backends
    (JAX/XLA) put in their runtime error's message."""
    if isinstance(exc, MemoryError):
        return True
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(exc, tf.errors.ResourceExhaustedError):
        return True
    return "RESOURCE_EXHAUSTED" in str(exc)[:200]
