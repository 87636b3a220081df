"""The frozen part's features, computed once per image and shared by every trial that has the same
frozen part: what makes an EfficientNet search's transfer phase nearly free after its first trial.

No HPO library shares work across trials this way (Optuna, KerasTuner, Ray Tune, Syne Tune have
no such cache): it is written here, on NumPy memmaps and Keras sub-models (models/split.py).

A phase's frozen part is everything below its cut: the augmentation and the backbone up to the
pooling (transfer learning) or up to the first block that fine-tuning unfreezes. Its output for an
image depends only on the backbone's weights there, the image size, the cut, the image and what
the augmentation did to it; those are the cache's key (`key`), so a change of any builds another
entry. Augmentation cannot draw new images every epoch from a cache: each training image is
stored as up to `feature_views` augmented views, drawn with the trial's augmentation knobs and a
fixed seed per view (so trials with the same knobs share them). A phase's first
`feature_plain_epochs` epochs (P) train on the unaugmented features, which every trial shares;
then epoch e feeds each image one of the views 0..min(e-P, V-1), drawn anew
(data/feature_batches.py). A view is built the first time an epoch needs it, so a trial never
computes more forward passes than it would on images, and a trial the pruner stops within its
first P epochs (the first rung: 2) builds none. Validation images are stored once, unaugmented.

Entries live beside the decode cache (`<results>/.cache/features/`), as float16 `.npy` files read
by memory map, written through a temporary file and `os.replace` under a file lock: concurrent
trials (`--workers`, several machines on one results folder) build an entry once, and a killed
build leaves no file a later trial would read. An entry larger than `BUDGET_BYTES` (or than the
free disk) is not built: the trial trains uncached, and says so once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.lib import format as npy_format

from leafsearch.data import LeafData
from leafsearch.data.cache import file_lock
from leafsearch.data.masks import MarkedImages
from leafsearch.models import split
from leafsearch.models.augment import augmentation_layers
from leafsearch.training.recipe import AUGMENT_KNOBS

FORMAT = 1  # bumped when what an entry holds for the same key would change
DTYPE = np.float16
BUDGET_BYTES = 8 * 1024**3  # the most one entry may take on disk
VIEW_SEED = 20261206  # the views' draws: the same for every trial, so that trials share them
BUILD_BATCH = 32  # images per forward pass while building (fixed: the views must not depend on the trial)
CHUNK = 256  # images per `predict` call, written to the memmap before the next
# The recipe's knobs that change the pixels before the backbone (models/augment.py), as `resolve`
# leaves them: an `augment` level is keyed by the values it sets.
AUGMENTATION_KNOBS = (*AUGMENT_KNOBS, "aug_background")

Note = Callable[[str], None]


def stderr_note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Views:
    """The augmented views of the training images (in `data.train_idx` order), for every cut of a
    trial at once: view `v` is built (in one pass for all cuts) the first time a phase asks for it,
    so a trial pays for a view only when an epoch uses it, and never for more than `count`."""

    def __init__(self, count: int, build: Callable[[int], dict[str, np.ndarray]]):
        self.count = count
        self._build = build
        self._built: dict[int, dict[str, np.ndarray]] = {}
        self.cold = False  # whether this trial built one

    def view(self, index: int, cut: str) -> np.ndarray:
        if index not in self._built:
            self._built[index] = self._build(index)
        return self._built[index][cut]


@dataclasses.dataclass(frozen=True)
class Features:
    """A phase's cached inputs: `plain` (N, ...) is every image unaugmented, in `data.images`
    order; `view(v)` the training images, in `data.train_idx` order, as augmented view v of
    `views` (with no augmentation, one view: `plain[train_idx]`)."""

    plain: np.ndarray
    cut: str
    train_idx: np.ndarray
    augmented: Views | None
    cold: bool  # whether this trial built the plain features

    @property
    def views(self) -> int:
        return self.augmented.count if self.augmented is not None else 1

    def view(self, index: int) -> np.ndarray:
        if self.augmented is None:
            return self.train_plain()
        return self.augmented.view(index, self.cut)

    def train_plain(self) -> np.ndarray:
        """The training images unaugmented, in `train_idx` order: shared by every trial."""
        return self.plain[self.train_idx]


def unusable(recipe: Mapping[str, Any], metric: str) -> str | None:
    """Why a trial of this recipe cannot train on cached features, or None if it can."""
    if recipe.get("leaf_mask") not in (None, False, "none"):
        return "the leaf mask head trains below the backbone"
    if metric == "val_wild_accuracy":
        return "val_wild_accuracy validates on new backgrounds"
    if recipe.get("feature_views", 1) < 1:
        return "feature_views is 0"
    return None


def augments(recipe: Mapping[str, Any]) -> bool:
    return recipe["aug_flip"] != "none" or any(recipe[name] > 0 for name in AUGMENTATION_KNOBS[1:])


def weights_digest(model: keras.Model) -> str:
    """The frozen part's weights, hashed: what the backbone's origin (ImageNet, a file, a seeded
    random start) comes down to. ~30 ms for Lite0, 0.2 s for B4."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{weight.path}:{value.dtype}:{value.shape}\n".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def images_digest(images: np.ndarray) -> str:
    """The decoded images' identity: the decode cache's file (its name holds the folder's
    fingerprint), or a hash of the pixels when they are in memory."""
    filename = getattr(images, "filename", None)
    if filename:
        return f"file:{Path(filename).name}:{images.shape}"
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def key(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class FeatureCache:
    """The entries of one results folder (`folder`), built on demand and then read by memory map."""

    def __init__(self, folder: Path, budget_bytes: int = BUDGET_BYTES, note: Note = stderr_note):
        self.folder = Path(folder)
        self.budget_bytes = budget_bytes
        self.note = note

    def features(
        self, model: keras.Model, cuts: Sequence[str], data: LeafData, recipe: Mapping[str, Any]
    ) -> dict[str, Features] | str:
        """The cached inputs of the phases whose frozen parts end at `cuts` (those missing built
        now, all in one forward pass), or why the trial must train uncached (they would not fit)."""
        views = recipe["feature_views"] if augments(recipe) else 0
        train_idx = np.asarray(data.train_idx)
        shared = {
            "format": FORMAT,
            "backbone": recipe["backbone"],
            "image_size": data.image_size,
            "images": images_digest(data.images),
            "policy": keras.mixed_precision.dtype_policy().name,
            "backend": keras.backend.backend(),
        }
        plain, augmented, shapes = {}, {}, {}
        for cut in cuts:
            lower = split.lower_part(model, cut)
            shapes[cut] = tuple(int(d) for d in lower.output.shape[1:])
            common = {**shared, "cut": cut, "weights": weights_digest(lower)}
            plain[cut] = f"plain-{key(common)}"
            augmented[cut] = f"views-{key({**common, **self._view_key(recipe, train_idx)})}"
        size = sum(math.prod(shape) for shape in shapes.values()) * (len(data.images) + views * len(train_idx)) * 2
        room = min(self.budget_bytes, _free_bytes(self.folder))
        if size > room and not all((self.folder / f"{plain[c]}.npy").exists() for c in cuts):
            return (
                f"its features at {', '.join(cuts)} would take {size / 1e9:.1f} GB, more than the "
                f"{room / 1e9:.1f} GB the feature cache may use"
            )
        label = f"{recipe['backbone']} {data.image_size}px at {', '.join(cuts)}"
        plains, cold = self._entries(
            plain,
            {cut: (len(data.images), *shapes[cut]) for cut in cuts},
            lambda missing, outs: _predict_into(split.lower_part(model, missing), data.images, outs),
            f"{label}: {len(data.images)} images",
        )
        if not views:
            return {cut: Features(plains[cut], cut, train_idx, None, cold) for cut in cuts}
        # Background replacement finds the background in-band: the training images go marked, as the
        # trial's own input does (training/loop.py).
        source = MarkedImages(data.images) if recipe["aug_background"] > 0 else data.images

        def build(index: int) -> dict[str, np.ndarray]:
            def draw(missing: list[str], outs: list[np.ndarray]) -> None:
                layers = augmentation_layers(recipe, data.image_size, VIEW_SEED + 1000 * index)
                _predict_into(_Augmenting(layers, split.lower_part(model, missing)), _Rows(source, train_idx), outs)

            arrays, built = self._entries(
                {cut: f"{augmented[cut]}-{index}" for cut in cuts},
                {cut: (len(train_idx), *shapes[cut]) for cut in cuts},
                draw,
                f"{label}: {len(train_idx)} training images, augmented view {index + 1} of {views}",
                quiet_start=True,
            )
            group.cold = group.cold or built
            return arrays

        group = Views(views, build)
        return {cut: Features(plains[cut], cut, train_idx, group, cold) for cut in cuts}

    @staticmethod
    def _view_key(recipe: Mapping[str, Any], train_idx: np.ndarray) -> dict[str, Any]:
        photos = recipe["backgrounds"] if recipe["aug_background"] > 0 else None
        key = {
            "train": hashlib.sha256(train_idx.astype(np.int64).tobytes()).hexdigest(),
            "augmentation": {name: recipe[name] for name in AUGMENTATION_KNOBS},
            "backgrounds": _folder_stamp(photos),
            "seed": VIEW_SEED,  # view v is drawn with VIEW_SEED + 1000 v: the same whatever `feature_views`
        }
        if photos is not None and recipe["photo_share"] != 1.0:  # photos alone keep the key they had
            key["photo_share"] = recipe["photo_share"]
        return key

    def _entries(
        self,
        names: Mapping[str, str],
        shapes: Mapping[str, tuple[int, ...]],
        compute: Callable[[list[str], list[np.ndarray]], Any],
        what: str,
        quiet_start: bool = False,
    ) -> tuple[dict[str, np.ndarray], bool]:
        """The entries `names` (one per cut) read by memory map; those missing built first, by one
        process (each entry's lock held, in name order), through `compute(cuts, arrays to fill)`."""
        paths = {cut: self.folder / f"{name}.npy" for cut, name in names.items()}
        if all(path.exists() for path in paths.values()):
            return {cut: np.load(path, mmap_mode="r") for cut, path in paths.items()}, False
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as locks:
            for name in sorted(set(names.values())):
                locks.enter_context(file_lock(self.folder / f"{name}.lock"))
            missing = [cut for cut, path in paths.items() if not path.exists()]  # another trial may have built some
            if missing:
                self._build(missing, {cut: paths[cut] for cut in missing}, shapes, compute, what, quiet_start)
        return {cut: np.load(path, mmap_mode="r") for cut, path in paths.items()}, bool(missing)

    def _build(
        self,
        cuts: list[str],
        paths: Mapping[str, Path],
        shapes: Mapping[str, tuple[int, ...]],
        compute: Callable[[list[str], list[np.ndarray]], Any],
        what: str,
        quiet_start: bool,
    ) -> None:
        """Fill temporary files and move them into place: a killed build leaves no entry."""
        nbytes = sum(math.prod(shapes[cut]) for cut in cuts) * np.dtype(DTYPE).itemsize
        if not quiet_start:
            self.note(f"Feature cache: computing {what} ({nbytes / 1e6:.0f} MB) ...")
        started = time.monotonic()
        temporaries = {}
        try:
            for cut in cuts:
                handle, temporaries[cut] = tempfile.mkstemp(
                    dir=self.folder, prefix=f".{paths[cut].stem}.", suffix=".part"
                )
                os.close(handle)
            outs = [npy_format.open_memmap(temporaries[cut], mode="w+", dtype=DTYPE, shape=shapes[cut]) for cut in cuts]
            compute(cuts, outs)
            for out in outs:
                out.flush()
            del outs
            for cut in cuts:
                os.replace(temporaries[cut], paths[cut])
        finally:
            for temporary in temporaries.values():
                if os.path.exists(temporary):
                    os.unlink(temporary)
        self.note(f"Feature cache: {what} done in {time.monotonic() - started:.0f} s ({nbytes / 1e6:.0f} MB)")


class _Rows:
    """`images[rows]` without copying them all: sliced lazily, `CHUNK` at a time."""

    def __init__(self, images: np.ndarray, rows: np.ndarray):
        self.images, self.rows = images, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: slice) -> np.ndarray:
        return self.images[self.rows[index]]


class _Augmenting(keras.Model):
    """Augmentation (in training mode: it draws) then the frozen part (in inference mode), as
    one model so that `predict` compiles it; `predict`'s own training=False reaches neither."""

    def __init__(self, augmentation: list[keras.layers.Layer], lower: keras.Model):
        super().__init__(name="augmented_frozen_part")
        for layer in augmentation:  # built now, eagerly: a layer that makes a tensor in `build` (the
            if not layer.built:  # background photos' bank) cannot make it inside `predict`'s traced step
                layer.build((None, *lower.input.shape[1:]))
        self.augmentation = augmentation
        self.lower = lower

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.augmentation:
            x = layer(x, training=True)
        return self.lower(x, training=False)


def _predict_into(model: keras.Model, images, outs: list[np.ndarray]) -> None:
    """`model`'s outputs (one per array of `outs`) for every image, `CHUNK` images per `predict`."""
    for start in range(0, len(images), CHUNK):
        batch = np.asarray(images[start : start + CHUNK], dtype=np.float32)
        count = len(batch)
        if count % BUILD_BATCH:  # padded to whole batches: one batch shape, which XLA (JAX) compiles once
            batch = np.concatenate([batch, np.repeat(batch[-1:], BUILD_BATCH - count % BUILD_BATCH, axis=0)])
        predicted = model.predict(batch, batch_size=BUILD_BATCH, verbose=0)
        for out, values in zip(outs, predicted if isinstance(predicted, list) else [predicted]):
            out[start : start + count] = values[:count].astype(DTYPE)


def _folder_stamp(folder: Any) -> str | None:
    """A folder of background photos as the views saw it: its path and its files' names, sizes and
    modification times (a photo added or changed draws other views)."""
    if folder is None:
        return None
    path = Path(str(folder)).expanduser()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    stamp = "".join(f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}\n" for p in files)
    return f"{path.resolve()}:{hashlib.sha256(stamp.encode()).hexdigest()}"


def _free_bytes(folder: Path) -> int:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free
