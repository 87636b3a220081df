"""A trial's model scored on a test folder: the seed's metric (the fraction of test images
classified correctly), accuracy per class and a confusion-matrix PNG, stored with the study.

`results/<study>/evaluations/<trial>-<folder>-<hash>.json`, one per trial and test folder, holds
{trial, data, images, accuracy, per_class, subsets, confusion_png, evaluated_at}; its confusion PNG
is next to it (`report` shows both). A test folder may come in subsets, each with the class
folders (the seed's "healthy", "unhealthy", "wild"): `subsets` has each one's accuracy.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import UsageError
from search.records.files import write_json_atomic

FOLDER = "evaluations"


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """`matrix[true, predicted]` counts, every class a row and a column even when no image has it."""
    from sklearn import metrics  # lazy: only `evaluate` needs scikit-learn

    return metrics.confusion_matrix(labels, predicted, labels=range(num_classes)).astype(np.int64, copy=False)


def scores(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy over all images and per class (recall; a class with no test image is left out)."""
    totals = matrix.sum(axis=1)
    per_class = {name: float(matrix[i, i] / totals[i]) for i, name in enumerate(class_names) if totals[i]}
    return {
        "images": int(totals.sum()),
        "accuracy": float(np.trace(matrix) / max(1, totals.sum())),
        "per_class": per_class,
    }


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    """The confusion matrix as a PNG, each row normalised to the class's images, counts written in."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    rows = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    side = max(5.0, 0.45 * len(class_names) + 2.5)
    figure, axes = plt.subplots(figsize=(side + 1.0, side))
    try:
        image = axes.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
        ticks = np.arange(len(class_names))
        axes.set_xticks(ticks, labels=class_names, rotation=60, ha="right", fontsize=8)
        axes.set_yticks(ticks, labels=class_names, fontsize=8)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        axes.set_title(title)
        for (true, guess), count in np.ndenumerate(matrix):
            if count:
                axes.text(
                    guess,
                    true,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rows[true, guess] > 0.5 else "black",
                )
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)


def record_name(trial: int, data: Path) -> str:
    """One stored evaluation per trial and test folder: `<trial>-<folder name>-<8 hex of its path>`."""
    resolved = str(Path(data).resolve())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(resolved).name)[:40] or "data"
    return f"{trial}-{slug}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def store(
    study_dir: Path,
    trial: int,
    data: Path,
    matrix: np.ndarray,
    class_names: Sequence[str],
    subsets: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write the evaluation's JSON and PNG into the study folder (replacing only an earlier
    evaluation of the same trial on the same folder); returns the JSON's content. `subsets`: the
    confusion matrix of each subset of a test folder in subsets (their sum is `matrix`)."""
    folder = study_dir / FOLDER
    name = record_name(trial, data)
    png = folder / f"{name}-confusion.png"
    result = scores(matrix, class_names)
    plot_confusion(
        matrix,
        class_names,
        png,
        f"{study_dir.name} trial {trial}: accuracy {result['accuracy']:.3f} on {result['images']} images",
    )
    record = {
        "trial": int(trial),
        "data": str(data),
        "images": result["images"],
        "accuracy": result["accuracy"],
        "per_class": result["per_class"],
        "subsets": {
            subset: {key: value for key, value in scores(counts, class_names).items() if key != "per_class"}
            for subset, counts in (subsets or {}).items()
        },
        "confusion_png": png.relative_to(study_dir).as_posix(),
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(folder / f"{name}.json", record)
    return record


def test_subsets(data: Path) -> dict[str, Any]:
    """A test folder's parts: {"": the folder} when its sub-folders are classes, or {subset:
    folder} when each sub-folder holds the class folders itself (the seed's test set came as
    "healthy", "unhealthy" and "wild")."""
    from leafsearch.data import IMAGE_EXTENSIONS, scan_folder

    root = Path(data).expanduser()
    children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    nested = children and all(
        any(c.is_dir() for c in child.iterdir())
        and not any(f.suffix.lower() in IMAGE_EXTENSIONS for f in child.iterdir())
        for child in children
    )
    if not nested:
        return {"": scan_folder(root)}
    return {child.name: scan_folder(child) for child in children}


def evaluate_trial(
    results: Path, study: str, trial: int | None, data: Path, parts: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, Any], Path]:
    """Score a trial's best checkpoint (the best complete trial by default) on a test folder with
    the study's class sub-folders, or with subsets of them (`parts`: `test_subsets(data)`, when
    the caller has it already); store the result. Returns the trained trial, the stored record
    and the JSON's path."""
    from leafsearch.data import load_images
    from leafsearch.trained import checkpoint

    parts = test_subsets(data) if parts is None else parts  # a bad folder is reported before the model loads
    trained = checkpoint.load(results, study, trial)
    check_classes(parts, data, trained.class_names)
    matrices = {}
    for subset, test in parts.items():
        loaded = load_images(test, trained.image_size)
        predicted = trained.model.predict(loaded.images, batch_size=32, verbose=0).argmax(axis=1)
        matrices[subset] = confusion_matrix(loaded.labels, predicted, len(trained.class_names))
    total = sum(matrices.values())
    subsets = {name: counts for name, counts in matrices.items() if name}
    record = store(trained.study_dir, trained.trial, Path(data).resolve(), total, trained.class_names, subsets)
    return trained, record, trained.study_dir / FOLDER / f"{record_name(trained.trial, Path(data).resolve())}.json"


def summary_lines(
    results: Path, study: str, trial: int | None, data: Path, parts: Mapping[str, Any] | None = None
) -> list[str]:
    """`evaluate_trial`, told as `leafsearch evaluate` prints it: plain text, so that it can come
    back from the trial process that scored it at the end of `leafsearch run --test`."""
    trained, record, written = evaluate_trial(results, study, trial, data, parts)
    lines = [
        f"Study {trained.study} trial {trained.trial} (checkpoint of epoch {trained.epoch + 1}) on {data}: "
        f"accuracy {record['accuracy']:.4f} on {record['images']} images"
    ]
    lines += [
        f"  {subset}: accuracy {scored['accuracy']:.4f} on {scored['images']} images"
        for subset, scored in record["subsets"].items()
    ]
    worst = sorted(record["per_class"].items(), key=lambda item: item[1])[:3]
    lines.append("Lowest per-class accuracy: " + ", ".join(f"{name} {value:.3f}" for name, value in worst))
    lines.append(f"Wrote {written} and {trained.study_dir / record['confusion_png']}")
    return lines


def check_classes(parts: Mapping[str, Any], data: Path, class_names: Sequence[str], flag: str = "--data") -> None:
    """A test folder (each of its subsets) must have the study's class folders."""
    for subset, test in parts.items():
        if tuple(test.class_names) != tuple(class_names):
            missing = sorted(set(class_names) - set(test.class_names))
            extra = sorted(set(test.class_names) - set(class_names))
            where = f"{data}/{subset}" if subset else f"{data}"
            raise UsageError(
                f"{flag} {where}: its class folders differ from the study's "
                f"(missing: {', '.join(missing) or '-'}; unknown: {', '.join(extra) or '-'}); "
                f"pass a test folder with the same {len(class_names)} class sub-folders"
            )
