"""The feature cache: an EfficientNet trial trains its frozen part's features computed once, and
shared. Cold and warm give the same trial; every input of the frozen part is in the key; a killed
build leaves nothing a later trial reads; concurrent trials build once; the full model, which
evaluate/export use, predicts what the cached composition does; a continued trial is the trial."""

import json
import multiprocessing
import time

import keras
import numpy as np
import pytest

from leafsearch.data import prepare
from leafsearch.data.feature_batches import FeatureBatches
from leafsearch.models import split
from leafsearch.models.efficientnet import build_efficientnet, unfreeze_top_blocks
from leafsearch.training import feature_cache
from leafsearch.training.feature_cache import FeatureCache
from leafsearch.training.objective import LeafObjective
from leafsearch.training.recipe import resolve
from tests.leafsearch.test_training import ListReporter, optimizer_steps

pytestmark = [
    pytest.mark.slow,  # builds EfficientNet-Lite0 and trains it
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

SIZE = 32
PARAMS = {
    "backbone": "efficientnet_lite0",
    "weights": "imagenet",
    "image_size": SIZE,
    "batch_size": 16,
    "dense_units": 0,
    "transfer_epochs": 2,
    "finetune_epochs": 1,
    "unfreeze_blocks": 1,
    "feature_views": 2,
    "feature_plain_epochs": 1,
}


@pytest.fixture(scope="module")
def leaves(tmp_path_factory):
    from leafsearch.data import synthetic

    folder = tmp_path_factory.mktemp("leaves")
    synthetic.generate(folder, total=84, image_size=SIZE, seed=1)
    return folder


@pytest.fixture(scope="module")
def data(leaves, tmp_path_factory):
    return prepare(leaves, SIZE, cache_dir=tmp_path_factory.mktemp("decoded"), seed=0)


@pytest.fixture(scope="module")
def model():
    """Lite0 with its ImageNet backbone, as a trial builds it."""
    return build_efficientnet(resolve(PARAMS, "efficientnet"), num_classes=14, seed=0)


def entries(folder):
    return sorted(path.name for path in folder.glob("*.npy"))


def trial(objective, folder, **reporter):
    out = ListReporter(folder, **reporter)
    objective(PARAMS, out)
    return out.history


def numbers(history):
    return [{k: v for k, v in row.items() if k != "ended_at"} for row in history]


def test_cold_and_warm_cache_train_the_same_trial_and_a_continued_trial_is_the_trial(leaves, tmp_path, capfd):
    objective = LeafObjective(leaves, "efficientnet", max_epochs=3, cache_dir=tmp_path / "cache", feature_cache=True)
    cold = trial(objective, tmp_path / "cold")
    built = entries(tmp_path / "cache" / "features")
    # pooled and block7 (in one pass), each: every image plain, and the training images in the one
    # augmented view the second transfer epoch used (the first epoch of each phase trains plain)
    err = capfd.readouterr().err
    assert len(built) == 4 and err.count("Feature cache: computing") == 1 and err.count("augmented view") == 1
    warm = trial(objective, tmp_path / "warm")
    assert entries(tmp_path / "cache" / "features") == built and "computing" not in capfd.readouterr().err
    assert numbers(warm) == numbers(cold) and len(cold) == 3
    assert json.loads((tmp_path / "warm" / "costs.json").read_text())["cached_epochs"] == 3
    # Ctrl-C in its second epoch, then continued from the checkpoint of the first: the optimizer's
    # state (5 steps of 16 of the 70 training images) is in the full model's checkpoint.
    with pytest.raises(KeyboardInterrupt):
        trial(objective, tmp_path / "continued", interrupt_at=1)
    checkpoints = tmp_path / "continued" / "checkpoints"
    first = checkpoints / json.loads((checkpoints / "latest.json").read_text())["folder"]
    # A cached phase's checkpoint: the whole model (linked from checkpoint to checkpoint) and the part
    # above the cut with its optimizer, a small file
    assert (first / "frozen.weights.h5").stat().st_size > 20 * (first / "above-pooled.weights.h5").stat().st_size
    assert optimizer_steps(first, "above-pooled.weights.h5") == 5
    continued = trial(objective, tmp_path / "continued")
    assert numbers(continued)[0] == numbers(cold)[0] and len(continued) == 3
    # Uncached, the same recipe trains on images, augmentation drawn every epoch.
    uncached = LeafObjective(leaves, "efficientnet", max_epochs=3, cache_dir=tmp_path / "cache", feature_cache=False)
    trial(uncached, tmp_path / "uncached")
    assert "cached_epochs" not in json.loads((tmp_path / "uncached" / "costs.json").read_text())


def test_every_input_of_the_frozen_part_keys_its_own_entry(model, data, tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"  # a background photos folder (--backgrounds)
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(photos / "a.png")
    tmp_path = tmp_path / "features"
    cache = FeatureCache(tmp_path, note=lambda text: None)
    recipe = resolve(PARAMS, "efficientnet")
    first = cache.features(model, [split.POOLED], data, recipe)[split.POOLED]
    assert first.cold and first.plain.shape == (len(data.images), 1280) and first.plain.dtype == np.float16
    assert len(entries(tmp_path)) == 1  # the views are built when an epoch first asks for them
    assert first.views == 2 and first.view(1).shape == (len(data.train_idx), 1280) and len(entries(tmp_path)) == 2
    assert not np.array_equal(first.view(0), first.view(1)) and len(entries(tmp_path)) == 3
    again = cache.features(model, [split.POOLED], data, recipe)[split.POOLED]
    assert not again.cold and np.array_equal(again.view(1), first.view(1)) and not again.augmented.cold  # read back
    cache.features(model, [split.POOLED], data, {**recipe, "feature_views": 3})[split.POOLED].view(1)
    count = len(entries(tmp_path))
    assert count == 3  # view v does not depend on how many views a trial takes: shared
    changes = [
        (model, ["block7"], data, recipe),  # the cut
        (model, [split.POOLED], data, {**recipe, "aug_rotation": 0.2}),  # augmentation: only the views
        (model, [split.POOLED], data, {**recipe, "aug_background": 0.5}),  # new backgrounds in the views
        (model, [split.POOLED], data, {**recipe, "aug_background": 0.5, "backgrounds": str(photos)}),  # photos
    ]
    for change in changes:
        cache.features(*change)[change[1][0]].view(0)
        assert len(entries(tmp_path)) > count
        count = len(entries(tmp_path))
    other_images = data.__class__(**{**data.__dict__, "images": np.ascontiguousarray(data.images[:, ::-1])})
    cache.features(model, [split.POOLED], other_images, recipe)[split.POOLED].view(0)  # the data
    assert len(entries(tmp_path)) == count + 2
    count += 2
    changed = keras.models.clone_model(model)
    changed.set_weights(model.get_weights())
    kernel = changed.get_layer("backbone").get_layer("block7a_project_conv")
    kernel.kernel.assign(kernel.kernel * 1.01)  # the weights
    cache.features(changed, [split.POOLED], data, recipe)[split.POOLED].view(0)
    assert len(entries(tmp_path)) == count + 2
    # Two cuts at once (a trial's transfer and fine-tuning phases): one pass, the same features.
    both = FeatureCache(tmp_path / "both", note=lambda text: None).features(
        model, [split.POOLED, "block7"], data, recipe
    )
    for cut in (split.POOLED, "block7"):
        alone = cache.features(model, [cut], data, recipe)[cut]
        np.testing.assert_array_equal(both[cut].plain, alone.plain)
        np.testing.assert_array_equal(both[cut].view(1), alone.view(1))


def test_a_killed_build_leaves_no_entry_and_an_entry_too_large_is_not_built(model, data, tmp_path, monkeypatch):
    recipe = {**resolve(PARAMS, "efficientnet"), "aug_flip": "none", "aug_rotation": 0.0, "aug_zoom": 0.0}
    calls = []

    def killed(lower, images, outs):
        outs[0][:4] = 1.0
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(feature_cache, "_predict_into", killed)
    with pytest.raises(KeyboardInterrupt):
        FeatureCache(tmp_path, note=lambda text: None).features(model, [split.POOLED], data, recipe)
    assert list(tmp_path.glob("*.npy*")) == []  # no entry, no partial file
    monkeypatch.undo()
    features = FeatureCache(tmp_path, note=lambda text: None).features(model, [split.POOLED], data, recipe)[
        split.POOLED
    ]
    assert features.cold and features.augmented is None and not (np.asarray(features.plain) == 1.0).all()
    np.testing.assert_array_equal(features.view(0), features.plain[data.train_idx])  # no augmentation: one view
    notes = []
    small = FeatureCache(tmp_path / "small", budget_bytes=1000, note=notes.append)
    reason = small.features(model, ["block7"], data, recipe)
    assert isinstance(reason, str) and "more than" in reason and entries(tmp_path / "small") == []


def _build_slowly(folder, started):
    cache = FeatureCache(folder, note=lambda text: None)

    def compute(cuts, outs):
        with started.get_lock():
            started.value += 1
        time.sleep(1.0)
        outs[0][:] = 3.0

    arrays, _ = cache._entries({"c": "shared"}, {"c": (4, 2)}, compute, "test")
    assert (np.asarray(arrays["c"]) == 3.0).all()


def test_concurrent_trials_build_an_entry_once(tmp_path):
    started = multiprocessing.get_context("fork").Value("i", 0)
    workers = [
        multiprocessing.get_context("fork").Process(target=_build_slowly, args=(tmp_path, started)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert started.value == 1 and entries(tmp_path) == ["shared.npy"]


@pytest.mark.parametrize("blocks", [None, 1, 3])
def test_the_full_model_predicts_what_the_cached_composition_does(model, data, blocks):
    if blocks is not None:
        unfreeze_top_blocks(model, blocks)
    cut = split.cut_for("transfer" if blocks is None else "finetune", blocks or 1)
    images = np.asarray(data.images[:8], dtype="float32")
    lower, upper = split.lower_part(model, cut), split.upper_part(model, cut)
    features = lower.predict(images, verbose=0)
    full = model.predict(images, verbose=0)
    np.testing.assert_allclose(upper.predict(features, verbose=0), full, atol=1e-5)
    # stored as float16, as the cache keeps them: the same predictions up to float16's noise
    stored = upper.predict(features.astype(np.float16).astype(np.float32), verbose=0)
    np.testing.assert_allclose(stored, full, atol=2e-3)
    assert [v.path for v in upper.trainable_variables] == [v.path for v in model.trainable_variables]


def test_an_epoch_feeds_each_image_one_of_the_views_built_so_far():
    """After the plain (shared) epochs, each image gets one of the augmented views built so far, a
    view being built only when an epoch first uses it: a trial stopped within its plain epochs
    builds none."""
    asked = []

    def view(v):
        asked.append(v)
        return np.full((10, 3), float(v), dtype=np.float16)

    def plain():
        return np.full((10, 3), -1.0, dtype=np.float16)

    batches = FeatureBatches(view, 3, np.arange(10) % 2, 2, 4, True, 0, plain=plain, plain_epochs=2)
    seen = []
    batches.on_epoch_end()  # as `fit` resets its iterator: not an epoch
    for epoch in range(5):
        batches.on_epoch_begin()
        values = np.concatenate([batches[i][0][:, 0] for i in range(len(batches))])
        allowed = {-1.0} if epoch < 2 else set(range(min(epoch - 2, 2) + 1))
        assert len(values) == 10 and set(values) <= allowed
        assert batches.fed()[0, 0] == (-1.0 if epoch < 2 else 0.0)  # what precise batch norm reads
        seen.append(set(values))
        batches.on_epoch_end()
        if epoch == 1:
            assert asked == []  # the plain epochs build no view
        if epoch == 3:
            assert sorted(set(asked)) == [0, 1]  # a view is built when an epoch first uses it
    assert sorted(set(asked)) == [0, 1, 2] and seen[2] == {0} and seen[4] == {0, 1, 2}
    resumed = FeatureBatches(view, 3, np.arange(10) % 2, 2, 4, True, 0, epoch=5, plain=plain, plain_epochs=2)
    assert set(np.concatenate([resumed[i][0][:, 0] for i in range(len(resumed))])) <= {0, 1, 2}
