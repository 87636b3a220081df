"""Where a trial's time goes before its first useful step: import, model build, the first train
step (graph trace or XLA compile), the first validation (its own trace), against a steady step.

Each configuration runs in a fresh Python process, as a trial without leafsearch's preloaded
fork server would. A trial that leafsearch runs (in a child forked from a server that has
already imported Keras and the training code) pays no ``import_s``. The data is a few dozen
synthetic leaves at ``--image-size`` (the trace cost does not depend on it).

Configurations (``--models``, ``--backend``, ``--xla``, ``--lazy-optimizer``, ``--optimizer``):
- the CNN and EfficientNet-B0/B4 under the TensorFlow backend, XLA off (Keras' default on a CPU)
  and, with ``--xla``, on (``jit_compile=True``);
- with ``--backend jax`` (needs jax): the same under JAX, where every new batch shape is a new
  XLA compile; ``--partial-batch`` feeds the last training batch short, as leafsearch did before
  its JAX input path filled it up (the "before" figure);
- with ``--lazy-optimizer``: also with the optimizer's variables left for Keras to create inside
  the first trace of the train step (Keras' default without a distribution strategy, which makes
  TensorFlow trace the step twice), beside leafsearch's `build_optimizer` before `fit`;
- ``--optimizer ranger``: leafsearch's Ranger instead of Adam (its Lookahead slots double what
  the lazy build creates).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = r"""
import json, sys, time
started = time.perf_counter()
import keras, numpy as np
from leafsearch import data as leafdata
from leafsearch.data.batches import CachedBatches, make_batches
from leafsearch.models.cnn import build_cnn
from leafsearch.models.efficientnet import build_efficientnet
from leafsearch.training.loop import build_optimizer
from leafsearch.training.ranger import Ranger
from leafsearch.training.recipe import resolve
import_s = time.perf_counter() - started
cfg = json.loads(sys.argv[1])
data = leafdata.prepare(cfg["data"], cfg["image_size"], cache_dir=cfg["cache"])
pipeline = "cnn" if cfg["model"] == "cnn" else "efficientnet"
params = {"image_size": cfg["image_size"], "batch_size": cfg["batch_size"]}
if pipeline == "efficientnet":
    params.update(backbone=cfg["model"], weights="none")
recipe = resolve(params, pipeline)
t = time.perf_counter()
model = (build_cnn if pipeline == "cnn" else build_efficientnet)(recipe, data.num_classes, 0)
if pipeline == "efficientnet":
    model.get_layer("backbone").trainable = True
optimizer = Ranger(1e-3) if cfg["optimizer"] == "ranger" else keras.optimizers.Adam(1e-3)
model.compile(optimizer=optimizer, loss="categorical_crossentropy",
              metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], jit_compile=True if cfg["xla"] else "auto")
if not cfg["lazy_optimizer"]:
    build_optimizer(model)  # as a leafsearch trial does
build_s = time.perf_counter() - t
train = make_batches(data.images, data.labels, data.train_idx, data.num_classes, cfg["batch_size"], True, 0)
if cfg["partial_batch"] and isinstance(train, CachedBatches):
    train.shuffle = False  # plain slicing: the last batch is short (the order does not matter here)
val = make_batches(data.images, data.labels, data.val_idx, data.num_classes, cfg["batch_size"], False, 0)
marks = {}
class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        marks.setdefault("epochs", []).append({"begin": time.perf_counter(), "steps": []})
    def on_train_batch_end(self, batch, logs=None):
        marks["epochs"][-1]["steps"].append(time.perf_counter())
    def on_test_begin(self, logs=None):
        marks["epochs"][-1]["test_begin"] = time.perf_counter()
    def on_test_end(self, logs=None):
        marks["epochs"][-1]["test_end"] = time.perf_counter()
model.fit(train, validation_data=val, epochs=2, verbose=0, callbacks=[Clock()])
first, second = marks["epochs"]
steady = (second["steps"][-1] - second["begin"]) / len(second["steps"])
steps = [b - a for a, b in zip([first["begin"]] + first["steps"][:-1], first["steps"])]
print(json.dumps({"jit_compile": bool(model.jit_compile),
    "import_s": round(import_s, 2), "build_s": round(build_s, 2),
    "first_step_s": round(steps[0], 2),
    "first_epoch_train_s": round(first["steps"][-1] - first["begin"], 2),
    "first_validation_s": round(first["test_end"] - first["test_begin"], 2),
    "second_validation_s": round(second["test_end"] - second["test_begin"], 2),
    "steady_step_s": round(steady, 4), "steps_per_epoch": len(first["steps"]),
    "slow_steps_first_epoch": sum(1 for s in steps if s > 10 * steady + 0.05),
}))
"""


def probe(config: dict, backend: str) -> dict:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(ROOT),
    }
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(config)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - started, 2)
    result["overhead_before_steady_s"] = round(
        result["first_epoch_train_s"]
        - result["steps_per_epoch"] * result["steady_step_s"]
        + result["first_validation_s"]
        - result["second_validation_s"],
        2,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="cnn,efficientnet_b0,efficientnet_b4")
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax"])
    parser.add_argument("--xla", action="store_true", help="also measure with jit_compile=True (TensorFlow backend)")
    parser.add_argument("--partial-batch", action="store_true", help="also measure with a short last training batch")
    parser.add_argument(
        "--lazy-optimizer",
        action="store_true",
        help="also measure with the optimizer built inside the first trace (Keras' default)",
    )
    parser.add_argument("--optimizer", default="adam", choices=["adam", "ranger"])
    parser.add_argument("--repeats", type=int, default=1, help="measure each configuration this many times, in turn")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=84)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from leafsearch.data import synthetic

    work = Path(tempfile.mkdtemp(prefix="leafsearch-cold-"))
    synthetic.generate(work / "leaves", total=args.images, image_size=args.image_size, seed=0)
    base = {
        "data": str(work / "leaves"),
        "cache": str(work / "cache"),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "xla": False,
        "partial_batch": False,
        "lazy_optimizer": False,
        "optimizer": args.optimizer,
    }
    variants = [{}]
    if args.lazy_optimizer:
        variants.insert(0, {"lazy_optimizer": True})
    if args.xla:
        variants.append({"xla": True})
    if args.partial_batch:
        variants.insert(0, {"partial_batch": True})
    runs = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        for repeat in range(args.repeats):  # variants alternate, so drift on a busy machine hits both
            for variant in variants:
                config = {**base, "model": model, **variant}
                print(f"[cold_start] {model} {args.backend} {variant or 'default'}", file=sys.stderr, flush=True)
                runs.append(
                    {
                        "model": model,
                        "backend": args.backend,
                        "optimizer": args.optimizer,
                        "xla": config["xla"],
                        "partial_last_batch": config["partial_batch"],
                        "lazy_optimizer": config["lazy_optimizer"],
                        "repeat": repeat,
                        **probe(config, args.backend),
                    }
                )
    print(
        json.dumps(
            {
                "benchmark": "cold_start",
                "image_size": args.image_size,
                "batch_size": args.batch_size,
                "cpu_count": os.cpu_count(),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
