"""The leaf mask head alone: how well does it find the leaf off the black background, epoch by
epoch? It is trained only to segment (its binary cross-entropy against the true masks of the
training leaves, `aug_background` of them on new backgrounds, through leafsearch's own
augmentation layers and head), on the data of bench/wild.py, and every `--every` epochs its gate
(thresholded at 0.5, less `ERODE + HALO` px, as the model gates) is scored against the true masks
less `ERODE` px (as the classifier is trained on) by IoU (and precision, recall) on the clean, wild and photos subsets.
The wild leaves' true masks are their clean twins' (`demo-data --seed 101` draws the same leaves
on black). With `--average-from E`, also the IoU of the head whose weights are the mean of its
snapshots from epoch E on (stochastic weight averaging, Izmailov et al. 2018, arXiv:1803.05407).
`--heads` picks the heads, the same seed and data for each: `scratch` (leaf_mask.py) and `lite0`
(lite_mask_head.py, on EfficientNet-Lite0's ImageNet features; `--train-from` which of its stages
train, `frozen` none); `--photos` replaces backgrounds with scikit-learn's two sample photographs
instead of procedural ones (as bench/wild_fixed.py's `tl_photos`), and `--photo-shares` the
shares of them that are photos, the rest procedural (recipe `photo_share`; each share is an arm,
side by side on the same seed); the summary gives each arm's median, min and max final IoU over the seeds.

Why it exists: in a trial the head's mask is what separates wild from clean accuracy (given the
true masks the classifier scores wild leaves as well as clean ones, bench/README.md), and a trial
only says so through the classifier. Prints one JSON object; progress goes to stderr.

    pip install scikit-image; python bench/leaf_mask_head.py [--epochs 40] [--every 5] [--share 0.5] [--seeds 0]
        [--average-from 20] [--heads scratch lite0] [--train-from frozen] [--photos [--photo-shares 0 0.5 1]]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from cli_run import REPO, leafsearch
from wild import draw_data, sample_photos

sys.path.insert(0, str(REPO))


def read_folder(folder: Path, class_names: list[str]) -> np.ndarray:
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.open(p).convert("RGB"))
            for name in class_names
            for p in sorted((folder / name).glob("*.png"))
        ]
    )


def eroded(masks: np.ndarray, px: int) -> np.ndarray:
    """`(N, S, S)` boolean masks less `px` px of their rim (outside the image counts as background)."""
    if px == 0:
        return masks
    size = masks.shape[1]
    padded = np.pad(masks, ((0, 0), (px, px), (px, px)), constant_values=False)
    out = np.ones_like(masks)
    for dy in range(2 * px + 1):
        for dx in range(2 * px + 1):
            out &= padded[:, dy : dy + size, dx : dx + size]
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a & b).sum() / max((a | b).sum(), 1)), 3)


def one_seed(train: Path, subsets: dict, seed: int, head_name: str, photo_share: float, args) -> dict:
    import keras

    from leafsearch.data.masks import MarkedImages
    from leafsearch.models import augment, leaf_mask, lite_mask_head
    from leafsearch.training.recipe import resolve

    keras.utils.set_random_seed(seed)
    class_names = sorted(p.name for p in train.iterdir() if p.is_dir())
    images = read_folder(train, class_names)
    size = images.shape[1]
    recipe = resolve(
        {
            "image_size": size,
            "aug_background": args.share,
            "leaf_mask": head_name,
            "backgrounds": args.backgrounds,
            "photo_share": photo_share,
        },
        "cnn",
    )
    inputs = keras.Input((size, size, 3))
    x, target = inputs, None
    for layer in augment.augmentation_layers(recipe, size, seed):  # the model's own order (augment.augmented)
        if layer.name == augment.BACKGROUND:
            target = leaf_mask.LeafTarget()(x)
        x = layer(x)
    if target is None:
        target = leaf_mask.LeafTarget()(x)
    if head_name == "lite0":
        train_from = None if args.train_from == "frozen" else int(args.train_from)
        predicted = lite_mask_head.mask_head(x, size, pretrained=True, train_from=train_from)
    else:
        predicted = leaf_mask.mask_head(x, size)
    head = keras.Model(inputs, predicted)
    trainer = keras.Model(inputs, keras.layers.Concatenate(dtype="float32")([predicted, target]))

    def mask_loss(_, both):
        return keras.ops.mean(keras.losses.binary_crossentropy(both[..., 1:2], both[..., 0:1]))

    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=mask_loss)
    gate_px, true_px = leaf_mask.ERODE + leaf_mask.HALO, leaf_mask.ERODE

    def scores() -> dict:
        out: dict = {"precision": {}, "recall": {}}
        for name, (pictures, truth) in subsets.items():
            proposed = head.predict(pictures.astype(np.float32), batch_size=64, verbose=0)[..., 0] > 0.5
            gate, true = eroded(proposed, gate_px), eroded(truth, true_px)
            out[name] = iou(gate, true)
            out["precision"][name] = round(float((gate & true).sum() / max(gate.sum(), 1)), 3)
            out["recall"][name] = round(float((gate & true).sum() / max(true.sum(), 1)), 3)
        return out

    curve, snapshots = [], []

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % args.every:
                return
            row = {"epoch": epoch + 1, **scores()}
            if args.average_from and epoch + 1 >= args.average_from:
                snapshots.append(head.get_weights())
                current = head.get_weights()
                head.set_weights([np.mean([s[i] for s in snapshots], axis=0) for i in range(len(current))])
                row["averaged"] = scores()
                head.set_weights(current)
            print(
                f"seed {seed}, {head_name}, photo_share {photo_share}: {row} ({time.monotonic() - started:.0f} s)",
                file=sys.stderr,
            )
            curve.append(row)

    marked = MarkedImages(images)[np.arange(len(images))]
    started = time.monotonic()
    trainer.fit(
        marked,
        np.zeros((len(marked), 1)),
        batch_size=32,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[Score()],
    )
    return {"train_s": round(time.monotonic() - started, 1), "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=560)
    parser.add_argument("--test-images", type=int, default=280)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--share", type=float, default=0.5, help="aug_background: the share of training images on a new background"
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument(
        "--average-from", type=int, default=0, help="also score the mean of the snapshots from this epoch on"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--heads", nargs="+", choices=["scratch", "lite0"], default=["scratch", "lite0"])
    parser.add_argument(
        "--train-from",
        choices=["frozen", "1", "2", "3", "4", "5"],
        default="frozen" if lite_mask_head_default() is None else str(lite_mask_head_default()),
        help="lite0: the first of the encoder's stages that trains (frozen: none; batch norm never)",
    )
    parser.add_argument(
        "--photos",
        action="store_true",
        help="new backgrounds from scikit-learn's two sample photographs (none in the photos subset), not procedural",
    )
    parser.add_argument(
        "--photo-shares",
        type=float,
        nargs="+",
        default=[1.0],
        help="with --photos: the shares of new backgrounds that are photos (the rest procedural), an arm each",
    )
    args = parser.parse_args()
    from leafsearch.data.masks import leaf_masks

    results = {
        "images": args.images,
        "image_size": args.image_size,
        "share": args.share,
        "epochs": args.epochs,
        "train_from": args.train_from,
        "photos": args.photos,
        "photo_shares": args.photo_shares if args.photos else None,
        "seeds": {},
    }
    with tempfile.TemporaryDirectory(prefix="leaf-mask-head-") as tmp:
        root = Path(tmp)
        train, test = draw_data(root, args)
        args.backgrounds = sample_photos(root / "backgrounds") if args.photos else None
        twins = root / "twins"  # the wild subset's leaves on black: demo-data --subsets drew it with --seed 101
        leafsearch(
            "demo-data",
            str(twins),
            "--images",
            str(args.test_images),
            "--image-size",
            str(args.image_size),
            "--seed",
            "101",
            cwd=root,
        )
        class_names = sorted(p.name for p in train.iterdir() if p.is_dir())
        clean = read_folder(test / "clean", class_names)
        subsets = {
            "clean": (clean, leaf_masks(clean)[0]),
            "wild": (read_folder(test / "wild", class_names), leaf_masks(read_folder(twins, class_names))[0]),
            "photos": (read_folder(test / "photos", class_names), leaf_masks(clean)[0]),
        }
        shares = args.photo_shares if args.photos else [1.0]
        arms = {arm_name(head, share, shares): (head, share) for head in args.heads for share in shares}
        for seed in args.seeds:
            results["seeds"][seed] = {
                name: one_seed(train, subsets, seed, head, share, args) for name, (head, share) in arms.items()
            }
    results["summary"] = summary(results["seeds"], list(arms), list(subsets))
    print(json.dumps(results, indent=2))


def arm_name(head: str, share: float, shares: list[float]) -> str:
    return head if len(shares) == 1 else f"{head} photo_share={share:g}"


def summary(seeds: dict, arms: list[str], subsets: list[str]) -> dict:
    """Each arm's IoU at the last scored epoch: median, min and max over the seeds, per subset."""
    out = {}
    for arm in arms:
        last = [runs[arm]["curve"][-1] for runs in seeds.values() if runs[arm]["curve"]]
        out[arm] = {
            name: {
                "median": round(float(np.median([row[name] for row in last])), 3),
                "min": min(row[name] for row in last),
                "max": max(row[name] for row in last),
            }
            for name in subsets
            if last
        }
    return out


def lite_mask_head_default():
    from leafsearch.models.lite_mask_head import TRAIN_FROM

    return TRAIN_FROM


if __name__ == "__main__":
    main()
