"""The CLI commands that use a trial's trained model: `evaluate`, `export` and `predict`.

Each one is a thin handler: the work is in leafsearch.trained: checkpoint (rebuild + best
weights), evaluate, export and predict. Errors are raised as UsageError and printed as one line by the CLI.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from leafsearch.runtime import import_keras_quietly
from search.errors import UsageError

__all__ = ["evaluate", "export", "predict"]


def evaluate(args: argparse.Namespace) -> int:
    """Score a trial's best checkpoint on a test folder and store the result with the study."""
    from leafsearch.data import scan_folder

    test = scan_folder(args.data)  # a bad folder is reported before Keras loads
    import_keras_quietly()
    from leafsearch.data import load_images
    from leafsearch.trained import checkpoint, evaluate as evaluation

    trained = checkpoint.load(args.results, args.study, args.trial)
    if tuple(test.class_names) != trained.class_names:
        missing = sorted(set(trained.class_names) - set(test.class_names))
        extra = sorted(set(test.class_names) - set(trained.class_names))
        raise UsageError(f"--data {args.data}: its class folders differ from the study's "
                         f"(missing: {', '.join(missing) or '-'}; unknown: {', '.join(extra) or '-'}); "
                         f"pass a test folder with the same {len(trained.class_names)} class sub-folders")
    loaded = load_images(test, trained.image_size)
    predicted = trained.model.predict(loaded.images, batch_size=32, verbose=0).argmax(axis=1)
    matrix = evaluation.confusion_matrix(loaded.labels, predicted, len(trained.class_names))
    record = evaluation.store(trained.study_dir, trained.trial, Path(args.data).resolve(), matrix, trained.class_names)
    print(f"Study {trained.study} trial {trained.trial} (checkpoint of epoch {trained.epoch + 1}) on {args.data}: "
          f"accuracy {record['accuracy']:.4f} on {record['images']} images")
    worst = sorted(record["per_class"].items(), key=lambda item: item[1])[:3]
    print("Lowest per-class accuracy: " + ", ".join(f"{name} {value:.3f}" for name, value in worst))
    print(f"Wrote {trained.study_dir / evaluation.FOLDER / f'{trained.trial}.json'} and {trained.study_dir / record['confusion_png']}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Save a trial's model (best weights) as a .keras file with its class names beside it."""
    if args.output.suffix != ".keras":
        raise UsageError(f"--output {args.output}: a Keras model file ends in .keras; pass e.g. --output model.keras")
    import_keras_quietly()
    from leafsearch.trained import checkpoint, export as exported

    trained = checkpoint.load(args.results, args.study, args.trial)
    labels = exported.export(trained, args.output)
    print(f"Exported study {trained.study} trial {trained.trial} (checkpoint of epoch {trained.epoch + 1}, "
          f"{len(trained.class_names)} classes, {trained.image_size} px) to {args.output}; class names in {labels}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """Class and probability of every image given (files, or folders searched for images)."""
    from leafsearch.trained import predict as inference

    paths = inference.image_paths(args.images)  # a bad path is reported before Keras loads
    import_keras_quietly()
    from leafsearch.trained import export as exported

    loaded = exported.load(args.model)
    probabilities = inference.probabilities(loaded.model, paths, loaded.image_size)
    rows = [(str(path), loaded.class_names[int(p.argmax())], float(p.max())) for path, p in zip(paths, probabilities)]
    if args.output is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "class", "probability"])
        writer.writerows(rows)
        from search.files import write_text_atomic

        try:
            write_text_atomic(args.output, buffer.getvalue())
        except OSError as exc:
            raise UsageError(f"--output: cannot write {args.output} ({exc.strerror})") from None
        print(f"Wrote {len(rows)} predictions to {args.output}")
        return 0
    width = max(len(path) for path, _, _ in rows)
    name_width = max(5, *(len(name) for _, name, _ in rows))
    sys.stdout.write(f"{'image':<{width}}  {'class':<{name_width}}  probability\n")
    for path, name, probability in rows:
        sys.stdout.write(f"{path:<{width}}  {name:<{name_width}}  {probability:.4f}\n")
    return 0
