"""Wild leaves: trained on clean synthetic leaves (black background), how do models do off the
black background? Through the real CLI, on the same data and seed:

* `baseline`: `spaces/cnn.py`-like study, no background replacement, chosen by `val_accuracy`;
* `replaced`: the same with `aug_background` searched (0 to 1), chosen by `val_accuracy`;
* `selected`: the same search, chosen by `val_wild_accuracy` (the validation images with their
  backgrounds replaced, the same copy for every trial);
* `masked`: `selected` with the leaf mask head (`leaf_mask=True`: it learns where the leaf is from
  the black backgrounds and blacks out the rest before the classifier);
* `finetune`, `finetune_lite0`: the pretrained pipeline, `spaces/finetune.py` (transfer learning
  then fine-tuning, `aug_background` among its knobs) on EfficientNet-Lite0's ImageNet weights,
  chosen by `val_wild_accuracy`, without a mask head and with the "lite0" one; draw the data at
  128 px (`--image-size 128`) for pretrained features.

Each study's best trial is scored by `leafsearch evaluate` on one test folder in three subsets,
none drawn by the augmentation's code: `clean` (another draw of the synthetic leaves), `wild`
(`demo-data --wild`: cluttered, coloured backgrounds) and `photos` (clean leaves composited onto
scikit-image's bundled sample photographs, randomly cropped; `pip install scikit-image`).

Goal (issue 18): wild accuracy within 5 points of clean accuracy, clean accuracy no more than 0.5
points below the baseline's. Prints one JSON object; progress goes to stderr.

    python bench/wild.py [--images 560] [--test-images 280] [--image-size 64] [--trials 4] [--epochs 10] [--seeds 0 1 2] [--configs ...]
    python bench/wild.py --configs finetune finetune_lite0 --image-size 128 [--trials 4] [--epochs 8]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from cli_run import REPO, leafsearch

sys.path.insert(0, str(REPO))

SPACE = """from search import Choice, Fixed, Float, Space, Study
SPACE = Space(learning_rate=Float(3e-4, 3e-3, log=True, default=1e-3), dense_units=Choice([256, 512], default=512),
              batch_size=Fixed(32), image_size=Fixed({size}), patience=Fixed({patience}), epochs=Fixed({epochs}),
              aug_background={background}, leaf_mask=Fixed({leaf_mask}))
STUDY = Study(pipeline="cnn", metric="{metric}", trials={trials}, max_epochs={epochs})
"""
SEARCHED = "Float(0.0, 1.0, default=0.0)"
CONFIGS = {
    "baseline": ("Fixed(0.0)", "val_accuracy", False),
    "replaced": (SEARCHED, "val_accuracy", False),
    "selected": (SEARCHED, "val_wild_accuracy", False),
    "masked": (SEARCHED, "val_wild_accuracy", True),
    "finetune": (None, "val_wild_accuracy", "none"),
    "finetune_lite0": (None, "val_wild_accuracy", "lite0"),
}
# The shipped finetune space as it is (its aug_background levels included) on Lite0 at the data's
# size, with the leaf mask head fixed.
FINETUNE = """import runpy
from search import Fixed, Space, Study
base = runpy.run_path({path!r})["SPACE"]
SPACE = Space(**{{**dict(base.items()), "backbone": Fixed("efficientnet_lite0"), "image_size": Fixed({size}),
                 "leaf_mask": Fixed({leaf_mask!r})}})
STUDY = Study(pipeline="efficientnet", metric="{metric}", trials={trials}, max_epochs={epochs})
"""


def sample_photos(folder: Path) -> str:
    """scikit-learn's two sample photographs (no leaves in the way of a leaf), as a backgrounds folder."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder.mkdir(exist_ok=True)
    for name, image in zip(("china", "flower"), load_sample_images().images):
        Image.fromarray(image).save(folder / f"{name}.png")
    return str(folder)


def photo_subset(clean: Path, out: Path, seed: int) -> None:
    """The clean leaves of `clean` on scikit-image's sample photographs (random crops)."""
    import skimage.data
    from PIL import Image

    from leafsearch.data.masks import leaf_masks

    rng = np.random.default_rng(seed)
    photos = []
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "brick",
        "grass",
        "gravel",
        "rough_wall",
        "cell",
        "camera",
    ):
        try:
            photo = np.asarray(getattr(skimage.data, name)())
        except Exception:  # noqa: BLE001 - some samples need a download: use the bundled ones
            continue
        photos.append(np.stack([photo] * 3, -1) if photo.ndim == 2 else photo[..., :3])
    for path in sorted(clean.rglob("*.png")):
        image = np.asarray(Image.open(path).convert("RGB"))
        masks, usable = leaf_masks(image[None])
        photo = photos[rng.integers(len(photos))]
        side = int(min(photo.shape[:2]) * rng.uniform(0.3, 1.0))
        y, x = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
        crop = np.asarray(
            Image.fromarray(photo[y : y + side, x : x + side].astype(np.uint8)).resize(
                image.shape[:2][::-1], Image.BILINEAR
            )
        )
        composite = np.where(masks[0][..., None] | ~usable[0], image, crop)
        target = out / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(composite.astype(np.uint8)).save(target)


def draw_data(root: Path, args) -> tuple[Path, Path]:
    """`root/train` (clean leaves) and `root/test` in its three subsets (clean, wild, photos)."""
    train, test = root / "train", root / "test"
    leafsearch("demo-data", str(train), "--images", str(args.images), "--image-size", str(args.image_size), cwd=root)
    leafsearch(
        "demo-data",
        str(test),
        "--subsets",
        "--images",
        str(args.test_images),
        "--image-size",
        str(args.image_size),
        "--seed",
        "100",
        cwd=root,
    )
    photo_subset(test / "clean", test / "photos", seed=101)
    return train, test


def one_seed(root: Path, train: Path, test: Path, seed: int, args) -> dict:
    out = {}
    for name in args.configs:
        background, metric, leaf_mask = CONFIGS[name]
        space = root / f"{name}.py"
        if background is None:
            space.write_text(
                FINETUNE.format(
                    path=str(REPO / "spaces" / "finetune.py"),
                    size=args.image_size,
                    leaf_mask=leaf_mask,
                    metric=metric,
                    trials=args.trials,
                    epochs=args.epochs,
                )
            )
        else:
            space.write_text(
                SPACE.format(
                    size=args.image_size,
                    epochs=args.epochs,
                    patience=max(5, args.epochs // 3),
                    trials=args.trials,
                    background=background,
                    metric=metric,
                    leaf_mask=leaf_mask,
                )
            )
        print(f"seed {seed}: {name} ...", file=sys.stderr)
        wall = leafsearch("run", str(space), "--data", str(train), "--seed", str(seed), "--pruner", "none", cwd=root)
        leafsearch("evaluate", "--study", name, "--data", str(test), cwd=root)
        [record] = [
            json.loads(Path(p).read_text()) for p in glob.glob(str(root / "results" / name / "evaluations" / "*.json"))
        ]
        scores = {subset: round(s["accuracy"], 4) for subset, s in record["subsets"].items()}
        board = json.loads(
            subprocess.run(
                [sys.executable, "-m", "leafsearch", "report", "--study", name, "--format", "json"],
                cwd=root,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            ).stdout
        )
        best = max((r for r in board if r["state"] == "COMPLETE"), key=lambda r: r[metric])
        out[name] = {
            "wall_s": wall,
            "trial": best["trial"],
            "aug_background": best.get("param_aug_background"),
            **scores,
            "wild_gap": round(scores["clean"] - scores["wild"], 4),
            "photos_gap": round(scores["clean"] - scores["photos"], 4),
        }
        print(f"seed {seed}: {name}: {json.dumps(out[name])}", file=sys.stderr)  # what a stopped run has
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=560)
    parser.add_argument("--test-images", type=int, default=280)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    results = {
        "images": args.images,
        "test_images": args.test_images,
        "image_size": args.image_size,
        "trials": args.trials,
        "epochs": args.epochs,
        "seeds": {},
    }
    with tempfile.TemporaryDirectory(prefix="wild-") as tmp:
        root = Path(tmp)
        train, test = draw_data(root, args)
        for seed in args.seeds:
            seed_root = root / f"seed{seed}"
            seed_root.mkdir()
            results["seeds"][seed] = one_seed(seed_root, train, test, seed, args)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
