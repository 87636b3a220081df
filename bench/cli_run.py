"""The leafsearch CLI run as a benchmark runs it: a subprocess of this checkout, quiet, on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def leafsearch(*args: str, cwd: Path) -> float:
    """Run `python -m leafsearch ARGS` in `cwd`; returns its wall time. A failure ends the benchmark."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "leafsearch", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"leafsearch {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return round(time.monotonic() - started, 1)


def draw_leaves(folder: Path, images: int, size: int, seed: int) -> Path:
    """`leafsearch demo-data`: `images` synthetic leaves of `size` px drawn with `seed` into `folder`."""
    leafsearch(
        "demo-data",
        str(folder),
        "--images",
        str(images),
        "--image-size",
        str(size),
        "--seed",
        str(seed),
        cwd=folder.parent,
    )
    return folder
