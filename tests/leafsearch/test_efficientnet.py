"""EfficientNet pipeline: phase freezing, weights files, offline ImageNet, head options.

CPU-only and kept short: EfficientNetB0 at 32 px with random weights, one shared model, one
tiny fit. ImageNet downloads are faked, so nothing here needs the network.
"""

import keras
import numpy as np
import pytest

from leafsearch.models import efficientnet as en
from leafsearch.training.phases import efficientnet_phases
from leafsearch.training.recipe import resolve
from search.errors import UsageError

pytestmark = [
    pytest.mark.slow,  # builds EfficientNet-B0
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]  # Keras' TF backend, numpy 2

SIZE = 32
CLASSES = 4


def recipe(**overrides):
    params = {"backbone": "efficientnet_b0", "weights": "none", "image_size": SIZE, "dense_units": 16, **overrides}
    return resolve(params, "efficientnet")


def images(n=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return en.build_efficientnet(recipe(), CLASSES, seed=0)


@pytest.fixture(scope="module")
def b0_weights_file(tmp_path_factory):
    """A B0 backbone with its own random init and ImageNet's input normalisation (as a converted
    pretrained file has it), saved, and its output on a fixed input."""
    from leafsearch.models import backbone_weights

    keras.utils.set_random_seed(123)
    backbone = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    backbone_weights.set_normalization(backbone, backbone_weights.IMAGENET_MEAN, backbone_weights.IMAGENET_STD)
    path = tmp_path_factory.mktemp("weights") / "b0.weights.h5"
    backbone.save_weights(path)
    return path, keras.ops.convert_to_numpy(backbone(images(2), training=False))


def is_bn(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def block_number(name):
    return int(name[5]) if name.startswith("block") else None


def expected_trainable(backbone, blocks):
    """Independent of the code under test: block (8 - blocks)..7 and top_*, minus batch norm."""
    return {
        layer.name
        for layer in backbone.layers
        if ((block_number(layer.name) or 0) > 7 - blocks or layer.name.startswith("top_")) and not is_bn(layer)
    }


def head_weight_ids(model):
    return {id(w) for name in ("head_bn", "dense", "classifier") for w in model.get_layer(name).trainable_weights}


def test_model_layout(model):
    names = [layer.name for layer in model.layers]
    assert names[0] == "image" and all(n.startswith("aug_") for n in names[1 : names.index("backbone")])
    assert names[names.index("backbone") :] == ["backbone", "head_pool", "head_bn", "dense", "dropout", "classifier"]
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == (None, CLASSES)
    backbone = en.backbone_of(model)
    assert backbone.layers[1].__class__.__name__ == "Rescaling"  # the backbone scales 0-255 itself
    node = backbone._inbound_nodes[0]
    assert node.arguments.kwargs.get("training") is False  # BN stays in inference mode when unfrozen


@pytest.mark.parametrize("blocks", [1, 2, 7])
def test_unfreeze_top_blocks_selects_whole_blocks_without_batch_norm(model, blocks):
    backbone = en.backbone_of(model)
    names = en.unfreeze_top_blocks(model, blocks)
    trainable = {layer.name for layer in backbone.layers if layer.trainable}
    assert trainable == set(names) == expected_trainable(backbone, blocks)
    assert "top_conv" in trainable and f"block{8 - blocks}a_project_conv" in trainable
    if blocks < 7:
        assert f"block{7 - blocks}a_project_conv" not in trainable
    assert "stem_conv" not in trainable
    assert not any(layer.trainable for layer in backbone.layers if is_bn(layer))
    # The weights that actually train are exactly those of the chosen layers, plus the head.
    chosen = {id(w) for layer in backbone.layers if layer.name in trainable for w in layer.weights}
    assert {id(w) for w in backbone.trainable_weights} == chosen
    assert {id(w) for w in model.trainable_weights} == chosen | head_weight_ids(model)


def test_more_blocks_add_block6_and_weights(model):
    backbone = en.backbone_of(model)
    one = set(en.unfreeze_top_blocks(model, 1))
    count_one = len(model.trainable_weights)
    params_one = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    two = set(en.unfreeze_top_blocks(model, 2))
    assert one < two
    assert two - one == {
        layer.name for layer in backbone.layers if layer.name.startswith("block6") and not is_bn(layer)
    }
    assert len(model.trainable_weights) > count_one
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) > params_one


def test_freeze_backbone_leaves_only_the_head(model):
    en.unfreeze_top_blocks(model, 3)
    en.freeze_backbone(model)
    assert en.backbone_of(model).trainable_weights == []
    assert {id(w) for w in model.trainable_weights} == head_weight_ids(model)
    assert len(model.trainable_weights) == 6  # head BN gamma/beta, dense and classifier kernel/bias


@pytest.mark.parametrize("blocks", [0, 8, 1.0, True])
def test_unfreeze_top_blocks_rejects_bad_counts(model, blocks):
    with pytest.raises(ValueError, match="unfreeze_blocks"):
        en.unfreeze_top_blocks(model, blocks)


def test_phases():
    r = recipe(transfer_epochs=10, finetune_epochs=35, transfer_lr=1e-2, finetune_lr=1e-4)
    transfer, finetune = efficientnet_phases(r, max_epochs=12)
    assert (transfer.name, transfer.learning_rate, transfer.epochs) == ("transfer", 1e-2, 10)
    assert (finetune.name, finetune.learning_rate, finetune.epochs) == ("finetune", 1e-4, 12)
    assert transfer.prepare is en.freeze_backbone
    with pytest.raises(ValueError, match="unfreeze_blocks"):
        efficientnet_phases(recipe(unfreeze_blocks=9), max_epochs=12)


def test_weights_carry_over_and_phase2_trains_only_the_top_blocks(model):
    """Phase 2 keeps phase 1's weights in the same model object; one step then moves the
    unfrozen convs and the head, and no batch-norm statistic anywhere in the backbone."""
    transfer, finetune = efficientnet_phases(recipe(unfreeze_blocks=1), max_epochs=1)
    transfer.prepare(model)
    rng = np.random.default_rng(1)
    for name in ("dense", "classifier"):
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    before = [w.copy() for w in model.get_weights()]
    same = model
    finetune.prepare(model)
    assert model is same
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)

    backbone = en.backbone_of(model)
    watched = {
        "block7a_project_conv": backbone.get_layer("block7a_project_conv").kernel,
        "top_conv": backbone.get_layer("top_conv").kernel,
        "block6a_project_conv": backbone.get_layer("block6a_project_conv").kernel,
        "stem_conv": backbone.get_layer("stem_conv").kernel,
        "classifier": model.get_layer("classifier").kernel,
    }
    bn_vars = [w for layer in backbone.layers if is_bn(layer) for w in layer.weights]
    snap = {k: keras.ops.convert_to_numpy(v).copy() for k, v in watched.items()}
    bn_snap = [keras.ops.convert_to_numpy(w).copy() for w in bn_vars]

    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    labels = keras.utils.to_categorical(np.arange(8) % CLASSES, CLASSES)
    model.fit(images(8), labels, batch_size=8, epochs=1, verbose=0)

    moved = {k: not np.allclose(snap[k], keras.ops.convert_to_numpy(v)) for k, v in watched.items()}
    assert moved == {
        "block7a_project_conv": True,
        "top_conv": True,
        "block6a_project_conv": False,
        "stem_conv": False,
        "classifier": True,
    }
    for a, w in zip(bn_snap, bn_vars):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(w))


def test_resolve_weights(tmp_path):
    assert en.resolve_weights("none") is None
    assert en.resolve_weights("imagenet") == "imagenet"
    path = tmp_path / "x.weights.h5"
    path.write_bytes(b"")
    assert en.resolve_weights(str(path)) == str(path)
    with pytest.raises(UsageError, match=r"--weights PATH: file not found: .*missing\.h5.*'imagenet' or 'none'"):
        en.resolve_weights(str(tmp_path / "missing.h5"))


def test_weights_file_is_loaded_into_the_backbone(b0_weights_file, model):
    path, expected = b0_weights_file
    en.check_weights_available("efficientnet_b0", str(path))
    keras.utils.set_random_seed(999)  # a different random init, which the file must overwrite
    loaded = en.build_efficientnet(recipe(weights=str(path)), CLASSES, seed=0)
    got = keras.ops.convert_to_numpy(en.backbone_of(loaded)(images(2), training=False))
    scale = np.abs(expected).max()  # random-init outputs are tiny (~1e-6): compare relative to them
    assert scale > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)
    other = keras.ops.convert_to_numpy(en.backbone_of(model)(images(2), training=False))
    assert np.abs(other - expected).max() > 0.1 * scale


def test_weights_file_for_another_architecture_is_a_usage_error(tmp_path):
    b1 = keras.applications.EfficientNetB1(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    path = tmp_path / "b1.weights.h5"
    b1.save_weights(path)
    with pytest.raises(UsageError) as info:
        en.check_weights_available("efficientnet_b0", str(path))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "efficientnet_b0" in message and "could not be loaded" in message


def test_missing_weights_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="file not found"):
        en.check_weights_available("efficientnet_b0", str(tmp_path / "nope.weights.h5"))


def test_imagenet_offline_is_a_one_line_usage_error(monkeypatch):
    calls = []

    def offline(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        # What keras.utils.get_file raises when the host cannot be resolved.
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(UsageError) as info:
        en.check_weights_available("efficientnet_b4", "imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("--weights imagenet: cannot download the ImageNet weights of efficientnet_b4")
    assert "--weights PATH" in message and "--weights none" in message
    assert calls == [
        (
            "efficientnetb4_notop.h5",
            "https://storage.googleapis.com/keras-applications/efficientnetb4_notop.h5",
            {"cache_subdir": "models", "file_hash": "ebc24e6d6c33eaebbd558eafbeedf1ba"},
        )
    ]


def test_imagenet_cached_passes(monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: "/cache/efficientnetb0_notop.h5")
    assert en.check_weights_available("efficientnet_b0", "imagenet") is None
    en.check_weights_available("efficientnet_b0", "none")


def test_imagenet_file_matches_keras():
    """The cache file we fetch must be the one keras.applications looks for."""
    from keras.src.applications import efficientnet as keras_efficientnet

    assert en._WEIGHTS_URL == keras_efficientnet.BASE_WEIGHTS_PATH
    for name in (b for b in en.BACKBONES if not b.startswith("efficientnet_lite")):  # Lite: no Keras file
        assert en._NOTOP_HASHES[name] == keras_efficientnet.WEIGHTS_HASHES["b" + name[-1]][1]
    assert en.native_size("efficientnet_b4") == 380


def test_unknown_backbone_is_a_usage_error():
    with pytest.raises(UsageError, match="efficientnet_b9"):
        en.check_weights_available("efficientnet_b9", "none")


def test_no_dense_layer_when_dense_units_is_zero():
    m = en.build_efficientnet(recipe(dense_units=0), CLASSES, seed=0)
    names = [layer.name for layer in m.layers]
    assert "dense" not in names
    assert names[-3:] == ["head_bn", "dropout", "classifier"]
    assert {id(w) for w in m.trainable_weights} == {
        id(w) for name in ("head_bn", "classifier") for w in m.get_layer(name).trainable_weights
    }


def test_output_is_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        m = en.build_efficientnet(recipe(), CLASSES, seed=0)
        assert en.backbone_of(m).dtype_policy.name == "mixed_float16"
        assert m.outputs[0].dtype == "float32"
        out = m(images(2), training=False)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
