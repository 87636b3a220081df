"""An exported model: a full `.keras` file for inference, and its class names beside it.

`model.keras` is the trial's model with its best weights, no optimizer (an inference model needs
none) and no augmentation layers (they do nothing at inference: each becomes an `Identity`), so
it holds Keras' own layers only and `keras.saving.load_model` opens it in a process that has
never imported leafsearch. `model.labels.json` names the outputs: {"class_names": [...],
"image_size", "study", "trial"}.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import keras

from leafsearch.models import augment, leaf_mask  # registers RandomCropResize: exports from before 0.2 hold it
from leafsearch.trained.checkpoint import TrialModel
from search.errors import UsageError, one_line
from search.records.files import write_json_atomic

SUFFIX = ".keras"


def labels_path(model_path: Path) -> Path:
    """`model.labels.json` beside `model.keras`."""
    return Path(model_path).with_suffix(".labels.json")


@dataclasses.dataclass(frozen=True)
class Exported:
    model: keras.Model
    class_names: tuple[str, ...]
    image_size: int


def inference_model(model: keras.Model) -> keras.Model:
    """The model with each augmentation layer replaced by an `Identity` of the same name; every
    other layer is the model's own (its weights are shared, not copied)."""

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        training_only = layer.name.startswith((augment.PREFIX, leaf_mask.FIT_PREFIX))
        return keras.layers.Identity(name=layer.name) if training_only else layer

    return keras.models.clone_model(model, clone_function=swap)


def export(trained: TrialModel, path: Path) -> Path:
    """Save the trial's model for inference and its class names; returns the labels file's path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inference_model(trained.model).save(path)  # never compiled here: no optimizer state goes in
    labels = labels_path(path)
    write_json_atomic(
        labels,
        {
            "class_names": list(trained.class_names),
            "image_size": trained.image_size,
            "study": trained.study,
            "trial": trained.trial,
        },
    )
    return labels


def load(path: Path) -> Exported:
    """A model written by `export`, with its class names."""
    path = Path(path)
    labels = labels_path(path)
    if not path.is_file() or path.suffix != SUFFIX:
        raise UsageError(
            f"{path}: no such {SUFFIX} model file; write one with leafsearch export --study S --output {path.name}"
        )
    if not labels.is_file():
        raise UsageError(
            f"{path}: its class names file {labels} is missing; export the model again with leafsearch export"
        )
    try:
        meta = json.loads(labels.read_text(encoding="utf-8"))
        model = keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        raise UsageError(
            f"{path}: cannot load the model ({one_line(exc)[:200]}); export it again with leafsearch export"
        ) from None
    names = tuple(meta["class_names"])
    if model.output_shape[-1] != len(names):
        raise UsageError(
            f"{labels}: names {len(names)} classes, the model has {model.output_shape[-1]} outputs; export the model again"
        )
    return Exported(model, names, int(model.input_shape[1]))
