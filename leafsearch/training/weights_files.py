"""What a checkpoint folder holds of the model and its optimizer, written and read back.

A phase that trains on images writes the whole model with its optimizer (`model.weights.h5`).
A phase that trains on cached features (training/feature_cache.py) changes only the part above
its cut, so each checkpoint writes that part with the optimizer (`above-<cut>.weights.h5`, a few
layers) beside the whole model as it was when the phase's first checkpoint was written
(`frozen.weights.h5`, hard-linked from one checkpoint to the next): Keras takes about a second to
write a whole EfficientNet (it walks every layer in Python), which would be most of a cached epoch.
Reading either kind gives the same model; evaluate, export and predict read them through
`load_weights_only`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path

import keras

from leafsearch.models import split

WEIGHTS = "model.weights.h5"
FROZEN = "frozen.weights.h5"
ABOVE = "above-{cut}.weights.h5"


def build_optimizer(model: keras.Model) -> None:
    """Create the compiled optimizer's variables (moments, step count) before `fit`. Without a
    distribution strategy, Keras' TensorFlow trainer defers this to the first trace of the train
    step (`_maybe_symbolic_build`); a `tf.function` that creates variables on its first trace is
    traced a second time, so every trial paid for two traces. Built here, the train step is traced
    once: the first epoch of the CNN loses 1.2 s of its 2.9 s trace (Adam) or 4.4 s of 7 s
    (Ranger), measured in bench/README.md (cold_start.py)."""
    model.optimizer.build(model.trainable_variables)


@dataclasses.dataclass
class Trainer:
    """What a phase fits: `model` itself, or (`cut` set) its part above a cached frozen part."""

    model: keras.Model
    cut: str | None = None
    frozen: Path | None = None  # the phase's last `frozen.weights.h5`, linked into its next checkpoint

    @property
    def cached(self) -> bool:
        return self.cut is not None

    def save(self, full: keras.Model, folder: Path) -> None:
        """Weights and optimizer state (moments, step count, learning rate; Keras writes the
        compiled optimizer's variables into the weights file) into the checkpoint `folder`."""
        if self.cut is None:
            full.save_weights(folder / WEIGHTS)
            return
        if self.frozen is not None and self.frozen.exists():
            try:
                os.link(self.frozen, folder / FROZEN)
            except OSError:  # a file system without hard links
                shutil.copyfile(self.frozen, folder / FROZEN)
        else:
            full.save_weights(folder / FROZEN)
        self.model.save_weights(folder / ABOVE.format(cut=self.cut))

    def saved(self, folder: Path) -> None:
        """`folder` is the checkpoint just written: the next one links its frozen part."""
        if self.cut is not None:
            self.frozen = folder / FROZEN

    def load(self, full: keras.Model, folder: Path) -> None:
        """The checkpoint's weights and, when it was written by a phase trained the same way, its
        optimizer's state (otherwise the optimizer starts afresh: `--no-feature-cache` toggled
        between runs). The trainer is compiled; its optimizer is built first so Keras loads it."""
        build_optimizer(self.model)
        if above_cut(folder) == self.cut:
            if self.cut is None:
                full.load_weights(folder / WEIGHTS)
            else:
                _quietly(full.load_weights, folder / FROZEN)
                self.model.load_weights(folder / ABOVE.format(cut=self.cut))
            return
        load_weights_only(full, folder)


def above_cut(folder: Path) -> str | None:
    """The cut of a cached phase's checkpoint, None for a whole-model one."""
    for path in Path(folder).glob(ABOVE.format(cut="*")):
        return path.name.removeprefix("above-").removesuffix(".weights.h5")
    return None


def load_weights_only(model: keras.Model, folder: Path) -> None:
    """The model's weights of a checkpoint (a phase's best), not its optimizer's: the next phase
    compiles an optimizer of its own."""
    cut = above_cut(folder)
    if cut is None:
        _quietly(model.load_weights, folder / WEIGHTS)
        return
    _quietly(model.load_weights, folder / FROZEN)
    _quietly(split.upper_part(model, cut).load_weights, folder / ABOVE.format(cut=cut))


def _quietly(load, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        load(path)
