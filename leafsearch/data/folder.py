"""A data folder and its 5:1 split: which images there are, of which class, and which validate.

A data folder has the ``keras.utils.image_dataset_from_directory`` layout: one sub-folder per
class (class names are the sorted sub-folder names), images inside with one of the extensions in
:data:`IMAGE_EXTENSIONS` (case-insensitive). Hidden entries (names starting with ``.``) are
ignored. Scanning reads names and sizes only (no pixels, no Keras), so a bad folder is reported
before anything heavy loads.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.errors import UsageError

#: Extensions (lower-case) recognised as images, as in ``image_dataset_from_directory``.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})


@dataclass(frozen=True, eq=False)
class ImageFolder:
    """The files of a data folder, in a stable order (class, then file name).

    ``paths[i]`` belongs to class ``class_names[labels[i]]``. ``ignored`` lists the non-hidden
    files in class folders whose extension is not an image extension; they are reported in the
    skip warning of :func:`load_images`, never decoded.
    """

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray  # int64, shape (len(paths),), read-only
    ignored: tuple[Path, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.paths)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def scan_folder(root: str | os.PathLike[str]) -> ImageFolder:
    """List the classes and image files of ``root``; raise :class:`UsageError` on a bad layout."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UsageError(f"data folder {root} does not exist; pass an existing folder with one sub-folder per class")
    if not root.is_dir():
        raise UsageError(
            f"data folder {root} is not a directory; pass a folder with one sub-folder per class, "
            f"e.g. {root}/Apple/*.jpg"
        )
    try:
        class_dirs = sorted(
            (e for e in os.scandir(root) if not _is_hidden(e.name) and e.is_dir()),
            key=lambda e: e.name,
        )
    except OSError as exc:
        raise UsageError(f"data folder {root} cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if not class_dirs:
        raise UsageError(
            f"data folder {root} has no class sub-folders; expected one sub-folder per class, e.g. {root}/Apple/*.jpg"
        )

    class_names: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    ignored: list[Path] = []
    for label, entry in enumerate(class_dirs):
        images: list[Path] = []
        for path in _walk_files(Path(entry.path)):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                ignored.append(path)
        if not images:
            exts = " ".join(sorted(IMAGE_EXTENSIONS))
            raise UsageError(
                f"class folder {Path(entry.path)} in data folder {root} has no images ({exts}); "
                f"add images to it or remove it"
            )
        class_names.append(entry.name)
        paths.extend(images)
        labels.extend([label] * len(images))
    if len(class_names) < 2:
        raise UsageError(
            f"data folder {root} has only one class ({class_names[0]!r}); a classifier needs at "
            f"least two class sub-folders, e.g. {root}/Apple/*.jpg and {root}/Grape/*.jpg"
        )
    label_array = np.asarray(labels, dtype=np.int64)
    label_array.setflags(write=False)
    return ImageFolder(
        root=root,
        class_names=tuple(class_names),
        paths=tuple(paths),
        labels=label_array,
        ignored=tuple(ignored),
    )


def _walk_files(folder: Path) -> list[Path]:
    """Non-hidden regular files under ``folder`` (recursively, like Keras), sorted by relative path."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in filenames:
            if not _is_hidden(name):
                found.append(Path(dirpath, name))
    found.sort(key=lambda p: p.relative_to(folder).as_posix())
    return found


def content_id(folder: ImageFolder) -> str:
    """What a study remembers of its data, the same on every machine that has a copy of it:
    counts and a hash of every image's class, name and size (not its path or time stamp)."""
    digest = hashlib.sha256()
    for path in folder.paths:
        rel = path.relative_to(folder.root).as_posix()
        digest.update(f"{rel}\0{path.stat().st_size}\n".encode("utf-8", "surrogateescape"))
    return f"{len(folder.paths)} images in {folder.num_classes} classes, sha256 {digest.hexdigest()[:16]}"


def stratified_split(
    labels: Sequence[int] | np.ndarray, val_fraction: float = 1 / 6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(labels)-1`` into (train, validation), stratified per class.

    Per class of ``n`` items the validation count is ``round(n * val_fraction)`` (halves round
    up), clamped to ``[1, n - 1]`` when ``n >= 2``; a class of one item goes to training. The
    default fraction 1/6 is the seed recipe's 5:1 split. The result is deterministic for a seed,
    disjoint and complete; both arrays are sorted ``int64``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    train_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n = len(members)
        n_val = int(math.floor(n * val_fraction + 0.5))
        if n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        else:
            n_val = 0
        shuffled = rng.permutation(members)
        val_parts.append(shuffled[:n_val])
        train_parts.append(shuffled[n_val:])
    empty = np.empty(0, dtype=np.int64)
    train = np.sort(np.concatenate(train_parts or [empty])).astype(np.int64)
    val = np.sort(np.concatenate(val_parts or [empty])).astype(np.int64)
    return train, val
