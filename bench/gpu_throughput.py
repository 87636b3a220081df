"""Training images/s of an EfficientNet on synthetic leaves, float32 against mixed precision, and
the share of the step time spent waiting for data.

Run by ``bench/gpu_check.sh`` on a GPU machine (B4 at 380 px, the seed's final setting). It uses
only what a trial uses: the synthetic leaves, the decode-once cache (``leafsearch.data.prepare``),
the input path of the active Keras backend (``leafsearch.data.batches.make_batches``: tf.data under
TensorFlow, a NumPy ``PyDataset`` under JAX) and the trial's EfficientNet with its backbone
unfrozen (the fine-tuning phase, the expensive one).

How the figures are taken, for each precision:
- ``compile_s``: the first ``fit``, one epoch (trace, XLA compile, and the epoch's steps).
- ``images_per_s``: a second ``fit`` of ``--epochs`` whole passes over the cached data, timed
  end to end (``fit`` returns only after the last step has run, so asynchronous dispatch is
  counted). The train function compiled by the first call is reused, so no compile is in it.
- ``data_wait_share``: the same passes fed one fixed batch that is already in memory (no
  gathering at all); ``1 - t_fixed / t_real`` is the share of the real run that the device
  spent waiting for the input (0 when prefetching hides the input completely).

Prints one JSON object. On a CPU, try ``--backbone efficientnet_b0 --image-size 64 --images 64
--batch-size 8 --epochs 1``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _log(message: str) -> None:
    print(f"[gpu_throughput {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _fixed_batches(template, batch):
    """A dataset as long as ``template`` whose every batch is the same in-memory ``batch``."""
    import keras

    class Fixed(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)

        def __len__(self):
            return len(template)

        def __getitem__(self, index):
            return batch

    return Fixed()


def measure(precision: str, args, data) -> dict:
    import keras

    from leafsearch.data.batches import make_batches
    from leafsearch.models.efficientnet import MAX_BLOCKS, build_efficientnet, unfreeze_top_blocks
    from leafsearch.training.recipe import resolve

    keras.backend.clear_session()
    keras.mixed_precision.set_dtype_policy(precision)
    augment = {} if args.augment else {"aug_flip": False, "aug_rotation": 0.0, "aug_zoom": 0.0}
    recipe = resolve(
        {
            "backbone": args.backbone,
            "weights": "none",
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            **augment,
        },
        "efficientnet",
    )
    started = time.perf_counter()
    model = build_efficientnet(recipe, data.num_classes, seed=0)
    if args.phase == "finetune":
        unfreeze_top_blocks(model, MAX_BLOCKS)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    build_s = time.perf_counter() - started
    train = make_batches(
        data.images, data.labels, data.train_idx, data.num_classes, args.batch_size, shuffle=True, seed=0
    )
    steps = math.ceil(len(data.train_idx) / args.batch_size)

    started = time.perf_counter()
    model.fit(train, epochs=1, verbose=0)  # one whole epoch: every batch shape is compiled here
    compile_s = time.perf_counter() - started
    _log(f"{precision}: built in {build_s:.1f} s, compiled and warmed up in {compile_s:.1f} s")

    train = make_batches(
        data.images, data.labels, data.train_idx, data.num_classes, args.batch_size, shuffle=True, seed=1
    )
    started = time.perf_counter()
    model.fit(train, epochs=args.epochs, verbose=0)
    real_s = time.perf_counter() - started
    from leafsearch.data.batches import CachedBatches

    per_epoch = steps * args.batch_size if isinstance(train, CachedBatches) else len(data.train_idx)  # full batches
    images = args.epochs * per_epoch

    first = next(iter(_first_batch(data, args.batch_size)))
    fixed = _fixed_batches(range(steps), first)
    started = time.perf_counter()
    model.fit(fixed, epochs=args.epochs, verbose=0)
    fixed_s = time.perf_counter() - started
    fixed_images = args.epochs * steps * args.batch_size
    out = {
        "precision": precision,
        "build_s": round(build_s, 2),
        "compile_s": round(compile_s, 2),
        "images_per_s": round(images / real_s, 1),
        "fixed_batch_images_per_s": round(fixed_images / fixed_s, 1),
        "data_wait_share": round(max(0.0, 1.0 - (fixed_s / fixed_images) / (real_s / images)), 3),
        "timed_images": images,
        "timed_s": round(real_s, 2),
    }
    _log(f"{precision}: {out['images_per_s']} img/s, data wait {out['data_wait_share']:.1%}")
    return out


def _first_batch(data, batch_size):
    import numpy as np

    rows = data.train_idx[:batch_size]
    onehot = np.zeros((len(rows), data.num_classes), dtype=np.float32)
    onehot[np.arange(len(rows)), data.labels[rows]] = 1.0
    yield np.ascontiguousarray(data.images[rows]), onehot


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="efficientnet_b4")
    parser.add_argument("--image-size", type=int, default=380)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=768, help="synthetic leaves to draw (5/6 of them train)")
    parser.add_argument("--epochs", type=int, default=2, help="timed passes over the training images")
    parser.add_argument(
        "--phase",
        choices=["finetune", "transfer"],
        default="finetune",
        help="finetune: the whole backbone trains (default); transfer: only the head",
    )
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="leave out the recipe's default augmentation layers (flip, rotation, zoom)",
    )
    parser.add_argument("--precisions", default="float32,mixed_float16")
    parser.add_argument("--budget-s", type=float, default=270.0, help="skip the remaining precisions after this long")
    parser.add_argument("--work", type=Path, help="folder for the leaves and the cache (default: a temporary one)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    import keras

    from leafsearch import data as leafdata
    from leafsearch.data import synthetic

    work = args.work or Path(tempfile.mkdtemp(prefix="leafsearch-gpu-"))
    leaves = work / "leaves"
    t = time.perf_counter()
    synthetic.generate(
        leaves, total=args.images, image_size=args.image_size, seed=0, workers=min(16, os.cpu_count() or 1)
    )
    draw_s = time.perf_counter() - t
    t = time.perf_counter()
    data = leafdata.prepare(leaves, args.image_size, cache_dir=work / "cache")
    decode_s = time.perf_counter() - t
    _log(f"drew {args.images} leaves in {draw_s:.1f} s, decoded them into the cache in {decode_s:.1f} s")

    result = {
        "benchmark": "gpu_throughput",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "devices": _devices(),
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "phase": args.phase,
        "augment": args.augment,
        "train_images": int(len(data.train_idx)),
        "decode_s": round(decode_s, 2),
        "runs": [],
        "skipped": [],
    }
    for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
        if time.perf_counter() - started > args.budget_s:
            result["skipped"].append(precision)
            continue
        try:
            result["runs"].append(measure(precision, args, data))
        except Exception as exc:  # noqa: BLE001 - one precision failing (e.g. out of memory) still reports the others
            result["runs"].append(
                {
                    "precision": precision,
                    "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                }
            )
    by = {run["precision"]: run for run in result["runs"] if "images_per_s" in run}
    if "float32" in by:
        for name, run in by.items():
            if name != "float32":
                result[f"speedup_{name}_vs_float32"] = round(run["images_per_s"] / by["float32"]["images_per_s"], 2)
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def _devices() -> list[str]:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [str(d.device_kind) for d in jax.devices()]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices()]
    return []


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
