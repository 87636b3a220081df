"""Decode once: a data folder's images as one uint8 array, cached on disk, split 5:1 into LeafData.

**Decode once** (see DESIGN.md): :func:`load_images` decodes every image with Pillow, converts it
to RGB and resizes it to ``S x S`` with bilinear interpolation, exactly once per folder content and
image size. The result is one ``uint8`` array ``(N, S, S, 3)`` cached in ``cache_dir`` as a plain
``.npy`` file (so every trial opens it with ``numpy.load(mmap_mode="r")`` and shares the OS page
cache) plus a small ``.json`` file that records which files were kept and which were skipped. The
cache key is a fingerprint of the folder (relative paths, sizes and modification times of all
files) and the image size, so adding, removing or modifying a file gives a new entry. Old entries
are not deleted automatically; removing the cache folder is always safe.

Notes on fidelity to ``image_dataset_from_directory``:

* Resizing uses Pillow's ``BILINEAR`` filter. When shrinking, Pillow widens the filter support
  (it antialiases) where ``tf.image.resize(..., "bilinear")`` samples only the 2x2 nearest pixels;
  the antialiased result is the better input for a CNN. Upscaling matches closely.
* Like TensorFlow's decoders, EXIF orientation is not applied and only the first frame of an
  animated GIF/WebP is used; alpha is dropped.

Files that cannot be decoded (corrupt, truncated, or not images at all) and non-image files in a
class folder are skipped with ONE warning on the ``leafsearch.data`` logger that counts them and
names the first few; they never reach training.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from leafsearch.data.folder import ImageFolder, scan_folder, stratified_split
from search.errors import UsageError
from search.records.files import write_text_atomic

# The package's logger (not this module's name): the skip warning is a leafsearch.data message.
log = logging.getLogger("leafsearch.data")

#: Bumped whenever the decoded content for the same files would change (resize filter, layout).
_CACHE_FORMAT = 1
#: How many skipped files the warning names before saying "and N more".
_NAMED_IN_WARNING = 5
#: Files decoded per ordered chunk (bounds the memory held by in-flight decodes).
_CHUNK = 256


class LoadedImages(NamedTuple):
    """What :func:`load_images` returns.

    ``images[j]`` is the decoded file ``folder.paths[kept[j]]`` with label ``labels[j]``.
    ``skipped`` lists ``(relative path, reason)`` for every file that was not decoded, including
    the folder's non-image files.
    """

    images: np.ndarray  # uint8 (K, S, S, 3); a read-only memmap when loaded from the cache
    labels: np.ndarray  # int64 (K,)
    kept: np.ndarray  # int64 (K,), indices into folder.paths
    skipped: tuple[tuple[str, str], ...]


def _fingerprint(folder: ImageFolder, image_size: int) -> str:
    """Hash of every file's relative path, size and mtime, plus the image size and cache format."""
    digest = hashlib.sha256()
    digest.update(f"leafsearch-data v{_CACHE_FORMAT} size={image_size}\n".encode())
    for kind, paths in (("img", folder.paths), ("other", folder.ignored)):
        for path in paths:
            try:
                st = path.stat()
                stamp = f"{st.st_size} {st.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            rel = path.relative_to(folder.root).as_posix()
            digest.update(f"{kind}\0{rel}\0{stamp}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def decode_image(path: Path, size: int) -> np.ndarray | str:
    """Decode ``path`` to a ``(size, size, 3)`` uint8 array, or return why it failed.

    The one decoder of the project: training data and `predict` go through it, so an image
    predicts what it would have scored as a validation image."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # e.g. "Palette images with Transparency..." or truncated-EXIF chatter: not actionable.
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.seek(0)
                if img.mode == "P":  # palette (maybe with transparency): via RGBA, alpha dropped
                    img = img.convert("RGBA")
                if img.mode != "RGB":
                    img = img.convert("RGB")
                if img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - any decode failure means "skip this file"
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200] if str(exc) else type(exc).__name__
    if arr.shape != (size, size, 3):
        return f"unexpected decoded shape {arr.shape}"
    return arr


def _decode_all(paths: Sequence[Path], size: int, workers: int | None) -> Iterator[tuple[int, np.ndarray | str]]:
    """Yield ``(index, array-or-reason)`` in order, decoding in a thread pool.

    Pillow releases the GIL while decoding and resizing, so threads scale with cores.
    """
    if workers is None:
        workers = min(32, os.cpu_count() or 1)
    workers = max(1, workers)
    if workers == 1 or len(paths) <= 1:
        for i, path in enumerate(paths):
            yield i, decode_image(path, size)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="leafsearch-decode") as pool:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start : start + _CHUNK]
            for offset, result in enumerate(pool.map(lambda p: decode_image(p, size), chunk)):
                yield start + offset, result


def _npy_header(count: int, size: int) -> dict:
    """The ``.npy`` header fields of ``count`` C-order uint8 images of ``size x size x 3``."""
    return {
        "descr": npy_format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (count, size, size, 3),
    }


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (so parallel trials decode a folder once); no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _try_load_cache(npy: Path, meta_path: Path, folder: ImageFolder, key: str, size: int) -> LoadedImages | None:
    if not (npy.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        images = np.load(npy, mmap_mode="r")
        kept = np.asarray(meta["kept"], dtype=np.int64)
        skipped = tuple((str(p), str(r)) for p, r in meta["skipped"])
        valid = (
            meta.get("key") == key
            and meta.get("format") == _CACHE_FORMAT
            and images.dtype == np.uint8
            and images.shape == (len(kept), size, size, 3)
            and (len(kept) == 0 or (kept.min() >= 0 and kept.max() < len(folder.paths)))
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.info("ignoring unreadable decode cache %s (%s); decoding again", npy, exc)
        return None
    if not valid:
        log.info("ignoring inconsistent decode cache %s; decoding again", npy)
        return None
    return LoadedImages(images, folder.labels[kept], kept, skipped)


def load_images(
    folder: ImageFolder,
    image_size: int,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
) -> LoadedImages:
    """Decode every image of ``folder`` to ``uint8 (K, S, S, 3)`` RGB, at most once per content.

    With ``cache_dir`` the array is streamed to ``<cache_dir>/leafdata-<S>px-<key>.npy`` (via a
    temporary file and ``os.replace``, so a kill mid-write never leaves a half file) with the
    kept/skipped record in a ``.json`` next to it (written last: it marks the entry complete).
    A later call with the same folder content and size memory-maps the cached array read-only
    and decodes nothing. Without ``cache_dir`` the array is decoded into memory.

    ``workers`` is the number of decoding threads (default: the CPU count, at most 32).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    size = int(image_size)

    if cache_dir is None:
        return _decode_to_memory(folder, size, workers)

    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _fingerprint(folder, size)
    stem = f"leafdata-{size}px-{key[:24]}"
    npy, meta_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"

    cached = _try_load_cache(npy, meta_path, folder, key, size)
    if cached is not None:
        log.info(
            "using %d decoded images of %s at %dpx from cache %s (%d files skipped when decoded)",
            len(cached.kept),
            folder.root,
            size,
            npy,
            len(cached.skipped),
        )
        return cached
    with file_lock(cache_dir / f"{stem}.lock"):
        # Another process may have finished the same entry while we waited for the lock.
        cached = _try_load_cache(npy, meta_path, folder, key, size)
        if cached is not None:
            return cached
        kept, skipped = _decode_to_npy(folder, size, workers, npy)
        meta = {
            "format": _CACHE_FORMAT,
            "key": key,
            "root": str(folder.root),
            "image_size": size,
            "class_names": list(folder.class_names),
            "kept": kept.tolist(),
            "skipped": [list(item) for item in skipped],
        }
        write_text_atomic(meta_path, json.dumps(meta))
    _warn_skipped(folder, skipped)
    log.info("decoded %d images of %s at %dpx into cache %s", len(kept), folder.root, size, npy)
    images = np.load(npy, mmap_mode="r")
    return LoadedImages(images, folder.labels[kept], kept, skipped)


def _non_image_skips(folder: ImageFolder) -> list[tuple[str, str]]:
    return [(p.relative_to(folder.root).as_posix(), "not an image file (extension)") for p in folder.ignored]


def _decode_to_memory(folder: ImageFolder, size: int, workers: int | None) -> LoadedImages:
    images = np.empty((len(folder.paths), size, size, 3), dtype=np.uint8)
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for i, result in _decode_all(folder.paths, size, workers):
        if isinstance(result, str):
            skipped.append((folder.paths[i].relative_to(folder.root).as_posix(), result))
        else:
            images[len(kept)] = result  # compact as we go: kept images stay in file order
            kept.append(i)
    skipped.extend(_non_image_skips(folder))
    skipped_t = tuple(skipped)
    _warn_skipped(folder, skipped_t)
    kept_arr = np.asarray(kept, dtype=np.int64)
    images = images[: len(kept)] if len(kept) < len(images) else images
    return LoadedImages(images, folder.labels[kept_arr], kept_arr, skipped_t)


def _decode_to_npy(
    folder: ImageFolder, size: int, workers: int | None, target: Path
) -> tuple[np.ndarray, tuple[tuple[str, str], ...]]:
    """Stream decoded images into a temp ``.npy`` next to ``target``, then ``os.replace`` it.

    Only the kept images are written (in file order), so the whole array is never held in memory.
    """
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # numpy pads the header so that the first axis may grow to any count without changing
            # its length: written for every file now, it is rewritten in place once K is known.
            npy_format.write_array_header_1_0(handle, _npy_header(len(folder.paths), size))
            data_start = handle.tell()
            for i, result in _decode_all(folder.paths, size, workers):
                if isinstance(result, str):
                    skipped.append((folder.paths[i].relative_to(folder.root).as_posix(), result))
                else:
                    handle.write(np.ascontiguousarray(result).tobytes())
                    kept.append(i)
            handle.seek(0)
            npy_format.write_array_header_1_0(handle, _npy_header(len(kept), size))
            if handle.tell() != data_start:  # pragma: no cover - numpy's padding guarantees it
                raise RuntimeError(f"the .npy header of {target} changed length; remove the cache folder")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    skipped.extend(_non_image_skips(folder))
    return np.asarray(kept, dtype=np.int64), tuple(skipped)


def _warn_skipped(folder: ImageFolder, skipped: Sequence[tuple[str, str]]) -> None:
    if not skipped:
        return
    named = "; ".join(f"{path} ({reason})" for path, reason in skipped[:_NAMED_IN_WARNING])
    more = f"; and {len(skipped) - _NAMED_IN_WARNING} more" if len(skipped) > _NAMED_IN_WARNING else ""
    log.warning(
        "skipped %d file%s in %s that %s not readable images: %s%s",
        len(skipped),
        "" if len(skipped) == 1 else "s",
        folder.root,
        "is" if len(skipped) == 1 else "are",
        named,
        more,
    )


@dataclass(eq=False)
class LeafData:
    """Decoded images with their labels and the 5:1 stratified split.

    ``images`` (uint8 ``(K, S, S, 3)``, often a read-only memmap) and ``labels`` (int64 ``(K,)``)
    are aligned; ``train_idx`` and ``val_idx`` index into them. ``skipped`` lists the files that
    were not decoded, as ``(relative path, reason)``.
    """

    class_names: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    root: Path | None = None
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])


def prepare(
    root: str | os.PathLike[str],
    image_size: int,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    *,
    val_fraction: float = 1 / 6,
    workers: int | None = None,
) -> LeafData:
    """Scan ``root``, decode it once (cached in ``cache_dir``) and split it 5:1 with ``seed``.

    Raises :class:`UsageError` when the folder layout is wrong or a class has no readable image.
    """
    folder = scan_folder(root)
    loaded = load_images(folder, image_size, cache_dir, workers=workers)
    counts = np.bincount(loaded.labels, minlength=folder.num_classes)
    empty = [name for name, count in zip(folder.class_names, counts) if count == 0]
    if empty:
        raise UsageError(
            f"class folder {folder.root / empty[0]} has no readable images (all failed to decode); "
            f"replace them or remove the folder"
        )
    small = [name for name, count in zip(folder.class_names, counts) if count < 2]
    if small:
        raise UsageError(
            f"class folder {folder.root / small[0]} has fewer than 2 readable images, too few to both train "
            f"and validate ({len(small)} such class(es)); add images or remove the folder"
        )
    train_idx, val_idx = stratified_split(loaded.labels, val_fraction=val_fraction, seed=seed)
    return LeafData(
        class_names=folder.class_names,
        images=loaded.images,
        labels=loaded.labels,
        train_idx=train_idx,
        val_idx=val_idx,
        root=folder.root,
        skipped=loaded.skipped,
    )


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> dict[int, float]:
    """ "Balanced" weights ``n_samples / (num_classes * count_c)`` for Keras ``fit(class_weight=)``.

    Same formula as scikit-learn's ``compute_class_weight("balanced")``. A class with no samples
    gets 1.0 (it never contributes to the loss anyway) so the dict always covers every class.
    """
    # Not scikit-learn's function itself: with `classes=range(num_classes)` it raises ("classes
    # should have valid labels that are in y", 1.9) when a class has no sample, and with only the
    # present classes it divides by their count, not `num_classes`; the numbers differ there.
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    counts = np.bincount(labels, minlength=num_classes)
    n = labels.size
    return {c: (float(n) / (num_classes * int(counts[c])) if counts[c] else 1.0) for c in range(num_classes)}
