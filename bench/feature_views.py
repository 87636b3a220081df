"""What training on cached features costs in accuracy, trial by trial: the seed's recipe (the
first trial of `spaces/transfer.py`, its defaults) trained once on images and once cached per
view setting, on the same data and seed, each scored on a test folder drawn with another seed.
The picks of bench/feature_cache.py mix this with the search's noise; here every arm trains the
same parameters, so the paired difference is the cache's (and training's own noise: hence the
seeds).

Arms: `images` (`--no-feature-cache`), `cached` (the defaults: `feature_views` 4,
`feature_plain_epochs` 2), and one per `--variants` entry `VIEWS:PLAIN` (e.g. `8:2`, `4:0`).
One JSON object on stdout: per seed and arm the test and best validation accuracy, the wall time
and the views built; per arm the median (range) of its test accuracy minus the images arm's.

    python bench/feature_views.py [--images 210] [--test-images 448] [--image-size 224]
                                  [--max-epochs 8] [--seeds 5 6 7 8 9] [--variants 8:2 4:0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from cli_run import REPO, draw_leaves
from feature_cache import study

VARIANT = """import runpy
from search import Fixed, Space
base = runpy.run_path({path!r})
SPACE = Space(**{{**dict(base["SPACE"].items()), "feature_views": Fixed({views}), "feature_plain_epochs": Fixed({plain})}})
STUDY = base["STUDY"]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=210)
    parser.add_argument("--test-images", type=int, default=448)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7, 8, 9])
    parser.add_argument("--variants", nargs="*", default=["8:2", "4:0"], help="VIEWS:PLAIN")
    args = parser.parse_args()
    args.trials = 1
    per_seed: dict = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix=f"feature-views-{seed}-") as tmp:
            root = Path(tmp)
            train = draw_leaves(root / "train", args.images, args.image_size, 300 + seed)
            test = draw_leaves(root / "test", args.test_images, args.image_size, 400 + seed)
            arms = {"images": (False, None), "cached": (True, None)}
            for variant in args.variants:
                views, plain = (int(part) for part in variant.split(":"))
                path = root / f"v{views}p{plain}.py"
                path.write_text(VARIANT.format(path=str(REPO / "spaces" / "transfer.py"), views=views, plain=plain))
                arms[f"v{views}p{plain}"] = (True, path)
            runs = {}
            for arm, (cached, space_file) in arms.items():
                print(f"[feature_views] seed {seed}: {arm}", file=sys.stderr, flush=True)
                run = study("transfer", cached, root, train, test, args, seed, variant=arm, space_file=space_file)
                runs[arm] = {
                    k: run[k] for k in ("test_accuracy", "best_val_accuracy", "wall_s", "views_built", "epochs_trained")
                }
            per_seed[seed] = runs
            print(f"[feature_views] seed {seed}: {json.dumps(runs)}", file=sys.stderr, flush=True)
    gaps = {}
    for arm in next(iter(per_seed.values())):
        if arm == "images":
            continue
        values = [100 * (runs[arm]["test_accuracy"] - runs["images"]["test_accuracy"]) for runs in per_seed.values()]
        gaps[arm] = {
            "median": round(statistics.median(values), 2),
            "min": round(min(values), 2),
            "max": round(max(values), 2),
            "per_seed": [round(v, 2) for v in values],
        }
    print(json.dumps({"config": vars(args), "per_seed": per_seed, "test_gap_points": gaps}, indent=1))


if __name__ == "__main__":
    main()
