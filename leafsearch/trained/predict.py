"""Images in, class probabilities out, with the training data's exact preprocessing.

Images are decoded by the data pipeline's own decoder (`leafsearch.data.decode_image`: Pillow, RGB, bilinear
resize to the model's side, 0-255 uint8), so a file predicts what it would have scored as a
validation image; the model rescales or normalises itself.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from leafsearch.data import IMAGE_EXTENSIONS, decode_image
from search.errors import UsageError
from search.records.files import write_text_atomic

if TYPE_CHECKING:  # Keras loads only once the paths are known to be good
    import keras

CHUNK = 256  # images decoded and predicted at a time, so a large folder never sits in memory whole


def image_paths(items: Iterable[os.PathLike[str] | str]) -> list[Path]:
    """The given files, and the image files (by extension) under the given folders, in order.
    Called before Keras loads, so a wrong path costs no start-up."""
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(
                p
                for p in item.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(item).parts)
            )
            if not found:
                raise UsageError(f"{item}: folder has no images ({' '.join(sorted(IMAGE_EXTENSIONS))})")
            paths.extend(found)
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_EXTENSIONS:
                raise UsageError(
                    f"{item}: not an image file ({' '.join(sorted(IMAGE_EXTENSIONS))}); pass image files or folders of images"
                )
            paths.append(item)
        else:
            raise UsageError(f"{item}: no such file or folder; pass image files or folders of images")
    return paths


def decode(paths: Sequence[Path], size: int) -> np.ndarray:
    """`(N, size, size, 3)` uint8 images; a file that does not decode is bad input."""
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        result = decode_image(path, size)
        if isinstance(result, str):
            raise UsageError(f"{path}: not a readable image ({result}); pass image files only")
        images[i] = result
    return images


def probabilities(model: keras.Model, paths: Sequence[Path], size: int, batch_size: int = 32) -> np.ndarray:
    """`(N, classes)` probabilities of the images at `paths`."""
    parts = [model.predict(chunk, batch_size=batch_size, verbose=0) for chunk in _decoded_chunks(paths, size)]
    return np.concatenate(parts) if parts else np.empty((0, model.output_shape[-1]), dtype=np.float32)


def _decoded_chunks(paths: Sequence[Path], size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(paths), CHUNK):
        yield decode(paths[start : start + CHUNK], size)


def predict_files(model_path: Path, paths: Sequence[Path]) -> list[tuple[str, str, float]]:
    """(path, class, probability) of each image, by an exported model."""
    from leafsearch.trained import export

    loaded = export.load(model_path)
    found = probabilities(loaded.model, paths, loaded.image_size)
    return [(str(path), loaded.class_names[int(p.argmax())], float(p.max())) for path, p in zip(paths, found)]


def write_csv(rows: Sequence[tuple[str, str, float]], path: Path) -> None:
    """The predictions as CSV (path, class, probability), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "class", "probability"])
    writer.writerows(rows)
    try:
        write_text_atomic(path, buffer.getvalue())
    except OSError as exc:
        raise UsageError(f"--output: cannot write {path} ({exc.strerror})") from None
