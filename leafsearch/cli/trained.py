"""`leafsearch evaluate`, `export`, `predict` (a trial's trained model) and `demo-data`."""

from __future__ import annotations

import argparse
import sys

from leafsearch.runtime import import_keras_quietly
from search.errors import UsageError


def evaluate(args: argparse.Namespace) -> int:
    """Score a trial's best checkpoint on a test folder (or on each of its subsets) and store the
    result with the study."""
    from leafsearch.trained import evaluate as evaluation

    parts = evaluation.test_subsets(args.data)  # a bad folder is reported before Keras loads
    import_keras_quietly()
    print("\n".join(evaluation.summary_lines(args.results, args.study, args.trial, args.data, parts)))
    return 0


def export(args: argparse.Namespace) -> int:
    """Save a trial's model (best weights) as a .keras file with its class names beside it."""
    if args.output.suffix != ".keras":
        raise UsageError(f"--output {args.output}: a Keras model file ends in .keras; pass e.g. --output model.keras")
    import_keras_quietly()
    from leafsearch.trained import checkpoint
    from leafsearch.trained import export as exported

    trained = checkpoint.load(args.results, args.study, args.trial)
    labels = exported.export(trained, args.output)
    print(
        f"Exported study {trained.study} trial {trained.trial} (checkpoint of epoch {trained.epoch + 1}, "
        f"{len(trained.class_names)} classes, {trained.image_size} px) to {args.output}; class names in {labels}"
    )
    return 0


def predict(args: argparse.Namespace) -> int:
    """Class and probability of every image given (files, or folders searched for images)."""
    from leafsearch.trained import predict as inference

    paths = inference.image_paths(args.images)  # a bad path is reported before Keras loads
    import_keras_quietly()
    rows = inference.predict_files(args.model, paths)
    if args.output is not None:
        inference.write_csv(rows, args.output)
        print(f"Wrote {len(rows)} predictions to {args.output}")
        return 0
    width = max(len(path) for path, _, _ in rows)
    name_width = max(5, *(len(name) for _, name, _ in rows))
    sys.stdout.write(f"{'image':<{width}}  {'class':<{name_width}}  probability\n")
    for path, name, probability in rows:
        sys.stdout.write(f"{path:<{width}}  {name:<{name_width}}  {probability:.4f}\n")
    return 0


def demo_data(args: argparse.Namespace) -> int:
    from leafsearch.data import synthetic

    if args.dir.exists() and any(args.dir.iterdir()):
        raise UsageError(f"{args.dir}: folder exists and is not empty; pass a new folder")
    if args.subsets and args.wild:
        raise UsageError("demo-data: --subsets already draws a wild subset; pass one of --subsets and --wild")
    parts = {"clean": False, "wild": True} if args.subsets else {"": args.wild}
    try:
        for offset, (subset, wild) in enumerate(parts.items()):
            counts = synthetic.generate(
                args.dir / subset,
                total=args.images,
                image_size=args.image_size,
                seed=args.seed + offset,
                wild=wild,
                workers=2,
            )
            print(f"Wrote {sum(counts.values())} images of {len(counts)} species to {args.dir / subset}")
    except ValueError as exc:
        raise UsageError(f"demo-data: {exc}") from None
    return 0


def weights(args: argparse.Namespace) -> int:
    """`weights convert`: an original EfficientNet checkpoint, or an EfficientNet-Lite PyTorch
    state dict (`.pth`), to a `--weights FILE` file."""
    import_keras_quietly()
    from leafsearch.models import backbone_weights, lite_weights

    if args.checkpoint.suffix in (".pth", ".pt"):
        done = lite_weights.convert_file(args.checkpoint, args.backbone, args.output)
    else:
        done = backbone_weights.convert_checkpoint(args.checkpoint, args.backbone, args.output, args.normalization)
    print(
        f"Wrote {args.output}: {done['variables']} weights of {done['scope']}"
        f"{' (its ExponentialMovingAverage copies)' if done['ema'] else ''}, inputs normalised as {done['normalization']}; "
        f"use it with leafsearch run SPACE --weights {args.output}"
    )
    return 0
