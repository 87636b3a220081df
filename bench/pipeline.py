"""Input pipeline throughput: leafsearch's decode-once cache + tf.data vs a naive per-image loader.

The naive loader is what a first training script does: open, decode and resize every image with
PIL in every epoch, one batch after another, no prefetch. leafsearch decodes each image once per
(dataset, image size) into a memory-mapped uint8 cache that every later trial reuses, and feeds
batches through tf.data with prefetch. Prints one JSON object: images/s per epoch for both, the
time the second trial spends decoding, and the ratio.

    python bench/pipeline.py [--images 560] [--source-size 256] [--image-size 128] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
from PIL import Image

from leafsearch import data as leafdata
from leafsearch.data import synthetic
from leafsearch.data.batches import make_tf_dataset
from leafsearch.runtime import import_keras_quietly

BATCH = 32


def naive_epoch(paths: list[Path], labels: np.ndarray, size: int) -> int:
    """One epoch of the naive loader; returns the number of images delivered."""
    count = 0
    eye = np.eye(int(labels.max()) + 1, dtype=np.float32)
    for start in range(0, len(paths), BATCH):
        batch = [
            np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR))
            for p in paths[start : start + BATCH]
        ]
        images, onehot = np.stack(batch), eye[labels[start : start + BATCH]]
        count += min(len(images), len(onehot))
    return count


def leafsearch_trial(root: Path, cache: Path, size: int, epochs: int) -> dict:
    """What one trial's input costs: preparing the data (a decode, or a cache hit), then epochs."""
    started = time.perf_counter()
    data = leafdata.prepare(root, size, cache_dir=cache, seed=0)
    prepare_s = time.perf_counter() - started
    indices = np.arange(len(data.labels))
    dataset = make_tf_dataset(data.images, data.labels, indices, len(data.class_names), BATCH, shuffle=True, seed=0)
    rates = []
    for _ in range(epochs):
        started, count = time.perf_counter(), 0
        for images, _labels in dataset:
            count += int(images.shape[0])
        rates.append(round(count / (time.perf_counter() - started), 1))
    return {"prepare_s": round(prepare_s, 3), "images_per_s_by_epoch": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=560)
    parser.add_argument("--source-size", type=int, default=256, help="side of the synthetic JPEG/PNG files")
    parser.add_argument("--image-size", type=int, default=128, help="side the pipeline resizes to")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import_keras_quietly()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "leaves"
        synthetic.generate(root, total=args.images, image_size=args.source_size, seed=0, workers=2)
        folder = leafdata.scan_folder(root)
        paths, labels = list(folder.paths), np.asarray(folder.labels)

        naive = []
        for _ in range(args.epochs):
            started = time.perf_counter()
            count = naive_epoch(paths, labels, args.image_size)
            naive.append(round(count / (time.perf_counter() - started), 1))

        cache = Path(tmp) / "cache"
        first = leafsearch_trial(root, cache, args.image_size, args.epochs)
        second = leafsearch_trial(root, cache, args.image_size, args.epochs)  # a later trial: cache hit

    steady = second["images_per_s_by_epoch"][-1]
    print(
        json.dumps(
            {
                "benchmark": "pipeline",
                "images": args.images,
                "source_size": args.source_size,
                "image_size": args.image_size,
                "batch": BATCH,
                "naive_images_per_s_by_epoch": naive,
                "leafsearch_first_trial": first,
                "leafsearch_second_trial": second,
                "ratio_second_epoch_vs_naive": round(first["images_per_s_by_epoch"][-1] / naive[-1], 1),
                "ratio_second_trial_vs_naive": round(steady / naive[-1], 1),
                "goal": ">= 7x the naive loader; the second trial decodes nothing (prepare_s ~ 0)",
            }
        )
    )


if __name__ == "__main__":
    main()
