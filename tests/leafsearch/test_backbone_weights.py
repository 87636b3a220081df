"""`leafsearch weights convert`: a checkpoint in the original EfficientNet code's naming, written
by the test from a seeded B0, converts into weights whose backbone computes what the source does;
bad checkpoints are one line, exit 2, and no file. And every origin normalises its inputs right."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from leafsearch.cli.main import main
from leafsearch.models import backbone_weights
from leafsearch.models.efficientnet import backbone_of, build_efficientnet
from leafsearch.training.recipe import resolve

pytestmark = pytest.mark.slow  # builds EfficientNet-B0 and Lite0 backbones

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def original_checkpoint_names(model: keras.Model, scope: str) -> dict[str, str]:
    """Keras weight path -> the name the original code gives it, derived as that code does
    (tensorflow/tpu models/official/efficientnet/efficientnet_model.py): one `blocks_N` scope per
    block, counted over all stages, and inside it tf.layers naming each conv and batch norm by
    its kind, numbered in call order (`conv2d`, `conv2d_1`, ...)."""
    names, block_index, counters, current = {}, -1, {}, None
    for layer in model.layers:  # Keras' layers are in call order too
        if not layer.weights or isinstance(layer, keras.layers.Normalization):
            continue
        if layer.name.startswith("block"):
            block = layer.name.split("_")[0]
            if block != current:
                current, block_index, counters = block, block_index + 1, {}
            kind = {
                keras.layers.DepthwiseConv2D: "depthwise_conv2d",
                keras.layers.BatchNormalization: "tpu_batch_normalization",
                keras.layers.Conv2D: "conv2d",
            }[type(layer)]
            sub = "se/" if "_se_" in layer.name else ""
            key = sub + kind
            count = counters.get(key, 0)
            counters[key] = count + 1
            base = f"{scope}/blocks_{block_index}/{sub}{kind}{'' if count == 0 else f'_{count}'}"
        else:
            part = {
                "stem_conv": "stem/conv2d",
                "stem_bn": "stem/tpu_batch_normalization",
                "top_conv": "head/conv2d",
                "top_bn": "head/tpu_batch_normalization",
            }[layer.name]
            base = f"{scope}/{part}"
        for weight in layer.weights:
            leaf = "depthwise_kernel" if kind_of(layer) == "depthwise" else weight.path.rpartition("/")[2]
            names[weight.path] = f"{base}/{leaf}"
    return names


def kind_of(layer) -> str:
    return "depthwise" if isinstance(layer, keras.layers.DepthwiseConv2D) else "other"


def save_checkpoint(folder: Path, tensors: dict[str, np.ndarray]) -> None:
    """A TensorFlow checkpoint holding exactly these variable names, as tf.compat.v1's Saver writes."""
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(folder / "model.ckpt"),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[n]) for n in names],
    )
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A seeded B0 with ImageNet normalisation and random batch-norm statistics, and its weights
    saved in the original naming: the EMA copies, and raw copies that differ (not to be used)."""
    keras.utils.set_random_seed(3)
    model = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(3)
    for weight in model.weights:
        if weight.path.endswith(("moving_mean", "gamma", "beta")):
            weight.assign(
                rng.normal(0.0, 0.3, weight.shape).astype("float32") + (1.0 if weight.path.endswith("gamma") else 0.0)
            )
        elif weight.path.endswith("moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    backbone_weights.set_normalization(model, MEAN, STD)
    folder = tmp_path_factory.mktemp("ckpt") / "noisy_student_efficientnet-b0"
    tensors = {"global_step": np.int64(1000), "efficientnet-b0/head/dense/kernel": np.zeros((1280, 1000), "float32")}
    for path, name in original_checkpoint_names(model, "efficientnet-b0").items():
        value = np.asarray(next(w for w in model.weights if w.path == path))
        tensors[name + "/ExponentialMovingAverage"] = value
        tensors[name] = value + 1.0  # the raw, non-averaged copy
        tensors[name + "/RMSProp"] = np.zeros_like(value)
    save_checkpoint(folder, tensors)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    return {"model": model, "folder": folder, "tensors": tensors, "images": images}


def test_the_converted_backbone_computes_what_the_source_does(source, tmp_path, capsys):
    out = tmp_path / "b0_noisy_student.weights.h5"
    assert (
        main(["weights", "convert", str(source["folder"]), "--backbone", "efficientnet_b0", "--output", str(out)]) == 0
    )
    assert "ExponentialMovingAverage" in capsys.readouterr().out and out.is_file()
    recipe = resolve(
        {"backbone": "efficientnet_b0", "weights": str(out), "image_size": 32, "dense_units": 0}, "efficientnet"
    )
    backbone = backbone_of(build_efficientnet(recipe, num_classes=3, seed=0))
    np.testing.assert_allclose(
        backbone.predict(source["images"], verbose=0),
        source["model"].predict(source["images"], verbose=0),
        rtol=1e-4,
        atol=1e-4,
    )


def test_advprop_checkpoints_get_their_own_normalisation(source, tmp_path):
    out = tmp_path / "advprop.weights.h5"
    assert (
        main(
            [
                "weights",
                "convert",
                str(source["folder"] / "model.ckpt"),
                "--backbone",
                "efficientnet_b0",
                "--output",
                str(out),
                "--normalization",
                "advprop",
            ]
        )
        == 0
    )
    model = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    model.load_weights(out)
    layer = backbone_weights.normalization_layer(model)
    np.testing.assert_allclose(np.asarray(layer.adapt_mean).ravel(), [0.5] * 3)
    np.testing.assert_allclose(np.asarray(layer.adapt_variance).ravel(), [0.25] * 3)


def test_weights_in_keras_imagenet_convention_or_without_normalisation_normalise_as_trained():
    model = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    layer = backbone_weights.normalization_layer(model)
    assert backbone_weights.normalize_as_trained(model, "none") == "as stored"  # random weights: x/255 only
    assert backbone_weights.normalize_as_trained(model, "x.weights.h5").startswith("none in the file")
    np.testing.assert_allclose(np.asarray(layer.adapt_variance).ravel(), np.square(STD), rtol=1e-6)
    layer.adapt_variance.assign(
        np.asarray(STD, "float32").reshape(layer.adapt_variance.shape)
    )  # as Keras' ImageNet file stores it
    assert backbone_weights.normalize_as_trained(model, "imagenet").startswith("keras imagenet convention")
    pixel = np.full((1, 1, 1, 3), 255.0, "float32")
    np.testing.assert_allclose(
        np.asarray(layer(pixel / 255.0)).ravel(), (1 - np.asarray(MEAN)) / np.asarray(STD), rtol=1e-5
    )


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("wrong backbone", "it holds efficientnet-b0, not efficientnet-b1; pass --backbone efficientnet_b0"),
        ("no checkpoint", "no TensorFlow checkpoint in this folder"),
        ("foreign", "not an EfficientNet checkpoint"),
        ("missing variable", "the checkpoint lacks efficientnet-b0/blocks_3/conv2d_1/kernel"),
    ],
)
def test_a_bad_checkpoint_is_one_line_and_writes_nothing(source, tmp_path, capsys, case, fragment):
    folder, backbone = source["folder"], "efficientnet_b0"
    if case == "wrong backbone":
        backbone = "efficientnet_b1"
    elif case == "no checkpoint":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "foreign":
        folder = tmp_path / "resnet"
        save_checkpoint(folder, {"resnet50/conv1/kernel": np.zeros((7, 7, 3, 64), "float32")})
    else:
        folder = tmp_path / "partial"
        save_checkpoint(folder, {k: v for k, v in source["tensors"].items() if "blocks_3/conv2d_1/kernel" not in k})
    out = tmp_path / "out.weights.h5"
    assert main(["weights", "convert", str(folder), "--backbone", backbone, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".converting-*"))


def test_an_original_lite_checkpoint_converts_with_its_fixed_normalisation(tmp_path, capsys):
    """Lite3 and Lite4 exist only as Google's original checkpoints (scope efficientnet-liteN/, no
    squeeze-excite): the same converter reads them."""
    from leafsearch.models.efficientnet_lite import EfficientNetLite

    keras.utils.set_random_seed(4)
    model = EfficientNetLite("efficientnet_lite0", input_shape=(32, 32, 3))
    rng = np.random.default_rng(4)
    for weight in model.weights:
        if weight.path.endswith("moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    tensors = {
        name + "/ExponentialMovingAverage": np.asarray(next(w for w in model.weights if w.path == path))
        for path, name in original_checkpoint_names(model, "efficientnet-lite0").items()
    }
    save_checkpoint(tmp_path / "lite0", tensors)
    out = tmp_path / "lite0.weights.h5"
    assert (
        main(["weights", "convert", str(tmp_path / "lite0"), "--backbone", "efficientnet_lite0", "--output", str(out)])
        == 0
    )
    assert "(x - 127) / 128" in capsys.readouterr().out
    recipe = resolve(
        {"backbone": "efficientnet_lite0", "weights": str(out), "image_size": 32, "dense_units": 0}, "efficientnet"
    )
    backbone = backbone_of(build_efficientnet(recipe, num_classes=3, seed=0))
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        backbone.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-4, atol=1e-4
    )
