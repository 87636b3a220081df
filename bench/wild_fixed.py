"""Wild leaves, one fixed trial per configuration: trained on clean synthetic leaves, each
configuration's single CNN trial (learning rate 1e-3, dense 512, batch 32, patience 10) is scored
by `leafsearch evaluate` on the clean, wild and photos subsets of bench/wild.py, per seed, through
the real CLI, on the same data. Without the search's noise, what each lever is worth.

    python bench/wild_fixed.py [--configs baseline replaced masked] [--seeds 0 1 2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import tempfile
from pathlib import Path

from cli_run import leafsearch
from wild import draw_data

SPACE = '''from search import Fixed, Space, Study
SPACE = Space(learning_rate=Fixed(1e-3), dense_units=Fixed(512), batch_size=Fixed(32), image_size=Fixed({size}),
              patience=Fixed(10), epochs=Fixed({epochs}), {extra})
STUDY = Study(pipeline="cnn", metric="val_accuracy", trials=1, max_epochs={epochs})
'''
CONFIGS = {"baseline": "aug_background=Fixed(0.0)", "replaced": "aug_background=Fixed(0.5)",
           "masked": "aug_background=Fixed(0.5), leaf_mask=Fixed(True)", "all_replaced": "aug_background=Fixed(1.0), leaf_mask=Fixed(True)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=560)
    parser.add_argument("--test-images", type=int, default=280)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["baseline", "replaced", "masked"])
    args = parser.parse_args()
    results: dict = {"images": args.images, "image_size": args.image_size, "epochs": args.epochs, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="wild-fixed-") as tmp:
        root = Path(tmp)
        train, test = draw_data(root, args)
        for name in args.configs:
            for seed in args.seeds:
                run = root / f"{name}-{seed}"
                run.mkdir()
                (run / "fixed.py").write_text(SPACE.format(size=args.image_size, epochs=args.epochs, extra=CONFIGS[name]))
                print(f"{name}, seed {seed} ...", file=sys.stderr)
                wall = leafsearch("run", str(run / "fixed.py"), "--data", str(train), "--seed", str(seed), "--pruner", "none", cwd=run)
                leafsearch("evaluate", "--study", "fixed", "--data", str(test), cwd=run)
                [record] = [json.loads(Path(p).read_text()) for p in glob.glob(str(run / "results" / "fixed" / "evaluations" / "*.json"))]
                scores = {subset: round(s["accuracy"], 3) for subset, s in record["subsets"].items()}
                results["runs"].setdefault(name, {})[seed] = {"wall_s": wall, **scores}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
