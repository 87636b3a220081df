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

import dataclasses
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from leafsearch.data import LeafData, class_weights
from leafsearch.data.batches import make_batches
from leafsearch.data.feature_batches import FeatureBatches
from leafsearch.data.masks import MarkedImages
from leafsearch.models import costs, split
from leafsearch.training import feature_cache
from leafsearch.training.callbacks import (
    CheckpointCallback,
    ReporterCallback,
    WildValidation,
    callback_states,
    phase_callbacks,
)
from leafsearch.training.feature_cache import FeatureCache
from leafsearch.training.losses import make_loss
from leafsearch.training.optimizers import make_optimizer
from leafsearch.training.phases import Phase
from leafsearch.training.precise_bn import PreciseBatchNorm
from leafsearch.training.tensorboard_log import HParamsLogger
from leafsearch.training.weights_files import Trainer, build_optimizer, load_weights_only
from search.errors import TrialPruned
from search.records import costs as cost_record
from search.records.checkpoints import CheckpointStore
from search.records.files import write_json_atomic
from search.reporter import Reporter

CLASSES = "classes.json"  # in the trial folder: the class names, in the order of the model's outputs


@dataclasses.dataclass(frozen=True)
class Resume:
    """The checkpoint a continued trial starts from: its folder and its state (`TrialTraining.save`)."""

    folder: Path
    state: Mapping[str, Any]

    @property
    def first_phase(self) -> int:
        """The first phase left to train: the checkpoint's, or the next one if it had finished."""
        return self.state["phase"] + (1 if self.state["phase_done"] else 0)

    def continues(self, index: int) -> bool:
        """Whether phase `index` is the checkpoint's own, stopped before its end."""
        return index == self.state["phase"] and not self.state["phase_done"]


@dataclasses.dataclass
class FitInputs:
    """What every phase of a trial fits on: its batches, class weights and steps per epoch, and the
    callbacks that come with the data (precise batch-norm statistics, the wild validation)."""

    train: Any
    val: Any
    class_weight: dict[int, float] | None
    steps_per_epoch: int
    precise: PreciseBatchNorm | None
    wild: WildValidation | None

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """First of a phase's callbacks: they change the model or the logs the others read."""
        return [callback for callback in (self.precise, self.wild) if callback is not None]


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

    def feature_cache(self) -> FeatureCache | None: ...


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
        self.features: dict[str, feature_cache.Features] = {}  # by cut, once read from the feature cache

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
        """Phase after phase from where the checkpoint found left off (the first epoch without
        one): the model as training left it (the last phase's best weights) and its data."""
        resume = self.begin()
        done = len(self.reporter.history)  # epochs trained so far, across phases
        data = self.objective.data(self.recipe["image_size"])
        num_classes = len(data.class_names)
        # A continued trial keeps the batch size it was trained with (half the sampled one after an
        # out-of-memory retry): what every checkpoint of this run records.
        sampled = self.recipe["batch_size"]
        self.batch_size = resume.state.get("batch_size", sampled) if resume is not None else sampled
        images_inputs: FitInputs | None = None
        model, phases = self.objective.build(self.recipe, num_classes, self.reporter.seed)
        self.record_model(model, data)
        # Epochs of finished phases that trained on cached features (a continued trial's from its record).
        cached_epochs = cost_record.read(self.reporter.trial_dir).get("cached_epochs", 0) if resume is not None else 0

        first_phase = resume.first_phase if resume is not None else 0
        budget = self.reporter.epoch_budget
        for index, phase in enumerate(phases):
            if index < first_phase or phase.epochs <= 0:
                continue
            if budget is not None and done >= budget:
                return model, data
            continued = resume if resume is not None and resume.continues(index) else None
            after = resume if resume is not None and index == first_phase and continued is None else None
            phase_epoch = continued.state["phase_epoch"] if continued is not None else 0
            phase_start = done - phase_epoch  # the trial epoch at which this phase began
            if phase.prepare is not None:  # what it unfreezes: before the frozen part is cut off
                phase.prepare(model)
            trainer, inputs = self.cached_phase(model, phases, phase, data, num_classes, done, phase_epoch)
            if inputs is None:
                images_inputs = images_inputs or self.fit_inputs(data, num_classes, done)
                inputs = images_inputs
            self.enter_phase(model, trainer, phase, inputs.steps_per_epoch, continued, after)
            last_epoch = phase.epochs if budget is None else min(phase.epochs, phase_epoch + budget - done)
            reporting = self.fit_phase(
                model, trainer, index, phase, inputs, phase_start, phase_epoch, last_epoch, continued
            )
            done += reporting.epochs_done
            if trainer.cached:  # the whole phase, the epochs before a resume too
                cached_epochs += done - phase_start
                self.record_cached(int(cached_epochs))
            if reporting.pruned:
                raise TrialPruned(f"pruned after epoch {done}")
            finished = reporting.epochs_done < last_epoch - phase_epoch or last_epoch >= phase.epochs
            if not finished:  # stopped by the engine's epoch budget
                return model, data
            self.restore_phase_best(model, phase_start, last=done - 1)  # the next phase starts from it
            resume = None
        return model, data

    def begin(self) -> Resume | None:
        """A fresh Keras session seeded with the trial's seed, and the latest checkpoint, if any,
        with its history given back to the reporter."""
        fresh_session()
        keras.utils.set_random_seed(self.reporter.seed)
        latest = self.store.latest()
        if latest is None:
            return None
        resume = Resume(*latest)
        self.reporter.restore(resume.state["history"])
        return resume

    def fit_inputs(self, data: LeafData, num_classes: int, done: int) -> FitInputs:
        """The batches of every phase at `self.batch_size`, and what the recipe adds around them."""
        recipe, seed, batch_size = self.recipe, self.reporter.seed, self.batch_size
        # A continued trial draws new shuffles rather than replaying the first epochs' order.
        # Background replacement finds the background in-band: the training images go marked.
        marked = recipe["aug_background"] > 0 or recipe["leaf_mask"] != "none"
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
        return FitInputs(train, val, class_weight, steps_per_epoch, precise, wild)

    def cached_phase(
        self,
        model: keras.Model,
        phases: list[Phase],
        phase: Phase,
        data: LeafData,
        num_classes: int,
        done: int,
        phase_epoch: int,
    ) -> tuple[Trainer, FitInputs | None]:
        """What `phase` trains and on what: the part of `model` above its frozen part, on that part's
        cached features (training/feature_cache.py), or `model` itself (inputs None: on images)
        where there is no cache, the recipe needs images, or the features would not fit."""
        cache = self.objective.feature_cache()
        if cache is None or phase.name not in split.CACHEABLE_PHASES:
            return Trainer(model), None
        if feature_cache.unusable(self.recipe, self.objective.metric) is not None:
            return Trainer(model), None
        cut = split.cut_for(phase.name, self.recipe["unfreeze_blocks"])
        if cut not in self.features:  # this phase's and the later ones', in one pass over the images
            later = [
                split.cut_for(p.name, self.recipe["unfreeze_blocks"])
                for p in phases[phases.index(phase) :]
                if p.name in split.CACHEABLE_PHASES and p.epochs > 0
            ]
            found = cache.features(
                model, [c for c in dict.fromkeys(later) if c not in self.features], data, self.recipe
            )
            if isinstance(found, str):
                cache.note(f"Trial {self.reporter.trial_number} trains its {phase.name} phase on images: {found}.")
                return Trainer(model), None
            self.features.update(found)
        features = self.features[cut]
        trainer = split.upper_part(model, cut)
        recipe, seed, batch_size = self.recipe, self.reporter.seed, self.batch_size
        train_idx, val_idx = np.asarray(data.train_idx), np.asarray(data.val_idx)
        train = FeatureBatches(
            features.view,
            features.views,
            data.labels[train_idx],
            num_classes,
            batch_size,
            True,
            seed + done,
            phase_epoch,
            plain=features.train_plain,
            plain_epochs=max(0, int(recipe["feature_plain_epochs"])),
        )
        val_features = np.asarray(features.plain[val_idx])
        val = FeatureBatches(lambda v: val_features, 1, data.labels[val_idx], num_classes, batch_size, False, seed)
        precise = None
        if recipe["precise_bn"]:  # on the training images as validation sees them, but for the new backgrounds
            if recipe["aug_background"] > 0:  # which only the views have (with the other augmentations):
                # what the epoch fed (the plain features in the first epochs, view 0 after them)
                precise = PreciseBatchNorm(train.fed, np.arange(len(train_idx)), batch_size, seed)
            else:
                precise = PreciseBatchNorm(features.plain, train_idx, batch_size, seed)
        class_weight = class_weights(data.labels[train_idx], num_classes) if recipe["class_weights"] else None
        steps = math.ceil(len(train_idx) / batch_size)
        return Trainer(trainer, cut), FitInputs(train, val, class_weight, steps, precise, None)

    def record_cached(self, epochs: int) -> None:
        """The leaderboard's `cached_epochs`: how many of the trial's epochs trained on cached features."""
        trial_dir = self.reporter.trial_dir
        cost_record.write(trial_dir, {**cost_record.read(trial_dir), "cached_epochs": epochs})

    def enter_phase(
        self,
        model: keras.Model,
        trainer: Trainer,
        phase: Phase,
        steps_per_epoch: int,
        continued: Resume | None,
        after: Resume | None,
    ) -> None:
        """`trainer` (`model`, or its part above a cached frozen part) ready for `phase`: on a
        resume after a finished phase that phase's best weights (`after`), a new optimizer compiled
        for the phase, with its state from the checkpoint when the phase goes on (`continued`)."""
        recipe = self.recipe
        if after is not None:  # the finished phase's best
            best = after.state["phase_best"]
            load_weights_only(model, after.folder if best is None else self.store.path(best))
        loss = make_loss(recipe["loss"], recipe["label_smoothing"], recipe["focal_gamma"], recipe["focal_alpha"])
        trainer.model.compile(
            optimizer=make_optimizer(recipe, phase.learning_rate, steps_per_epoch),
            loss=loss,
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        if continued is not None:
            trainer.load(model, continued.folder)
        else:
            build_optimizer(trainer.model)

    def fit_phase(
        self,
        model: keras.Model,
        trainer: Trainer,
        index: int,
        phase: Phase,
        inputs: FitInputs,
        phase_start: int,
        phase_epoch: int,
        last_epoch: int,
        continued: Resume | None,
    ) -> ReporterCallback:
        """`trainer.fit` from the phase's epoch `phase_epoch` to `last_epoch`, with the callbacks
        (their counters from the checkpoint when the phase goes on), checkpointing `model`; its
        reporting callback says how it ended."""
        reporting = ReporterCallback(self.reporter, phase_start)
        state = continued.state if continued is not None else None
        others = phase_callbacks(self.recipe, self.objective.metric, self.mode, state)
        if self.tensorboard is not None:
            self.tensorboard.epoch_offset = phase_start
            others.append(self.tensorboard)

        def save(phase_epochs_done: int, stopping: bool) -> None:
            self.save(model, trainer, index, phase, phase_start, phase_epochs_done, stopping, others)

        trainer.model.fit(
            inputs.train,
            validation_data=inputs.val,
            initial_epoch=phase_epoch,
            epochs=last_epoch,
            class_weight=inputs.class_weight,
            shuffle=False,  # the dataset shuffles itself, seeded
            callbacks=[*inputs.callbacks(), reporting, *others, CheckpointCallback(save, reporting)],
            verbose=0,
        )
        return reporting

    def restore_phase_best(self, model: keras.Model, phase_start: int, last: int) -> None:
        """The weights of the phase's best epoch (since `phase_start`), where that is not the
        `last` epoch trained and its checkpoint is still there."""
        best = self.best_epoch(since=phase_start)
        if best is not None and best != last and self.store.load(best) is not None:
            load_weights_only(model, self.store.path(best))

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
            measured = costs.measure_cached(model, sample, self.objective.cache_dir)
            cost_record.write(trial_dir, {**cost_record.read(trial_dir), **measured})

    def save(
        self,
        model: keras.Model,
        trainer: Trainer,
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
        trainer.saved(self.store.save(epoch, lambda folder: trainer.save(model, folder), state, keep=keep))


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
