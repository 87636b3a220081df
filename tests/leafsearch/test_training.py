"""The recipe → Keras pieces: optimizer, schedule, callbacks, augmentation, CNN head, objective."""

import json
import math

import keras
import numpy as np
import pytest

from leafsearch.models.augment import augmentation_layers
from leafsearch.models.cnn import build_cnn
from leafsearch.models.layers import RandomCropResize
from leafsearch.training import recipe as recipes
from leafsearch.training.callbacks import phase_callbacks
from leafsearch.training.objective import LeafObjective
from leafsearch.training.optimizers import make_optimizer
from leafsearch.training.phases import Phase
from leafsearch.training.ranger import Ranger
from leafsearch.training.schedules import Triangular2CyclicalLearningRate, TriangularCyclicalLearningRate
from search import UsageError
from search.errors import TrialFailed, TrialPruned
from search.records.checkpoints import CheckpointStore, copy_checkpoints
from search.reporter import Reporter


def cnn_recipe(**params):
    return recipes.resolve({"image_size": 32, **params}, "cnn")


def test_resolve_fills_the_seed_defaults_and_checks_the_pipeline():
    recipe = recipes.resolve({"dropout": 0.1}, "efficientnet")
    assert recipe["dropout"] == 0.1 and recipe["backbone"] == "efficientnet_b4" and recipe["transfer_lr"] == 1e-2
    assert recipes.resolve({}, "cnn")["backbone"] == "cnn"
    with pytest.raises(UsageError, match="does not fit the 'cnn' pipeline"):
        recipes.resolve({"backbone": "efficientnet_b0"}, "cnn")
    with pytest.raises(UsageError, match="`optimizer`: 'sgd' is not one of adam, ranger"):
        recipes.resolve({"optimizer": "sgd"}, "cnn")


def test_make_optimizer_adam_ranger_and_cyclical_schedules():
    assert isinstance(make_optimizer(cnn_recipe(), 1e-3, 10), keras.optimizers.Adam)
    assert isinstance(make_optimizer(cnn_recipe(optimizer="ranger"), 1e-3, 10), Ranger)
    opt = make_optimizer(cnn_recipe(lr_schedule="triangular2", clr_max_lr_factor=4.0, clr_step_epochs=2), 1e-3, 10)
    schedule = opt._learning_rate
    assert isinstance(schedule, Triangular2CyclicalLearningRate)
    assert schedule.step_size == 20 and schedule.maximal_learning_rate == pytest.approx(4e-3)
    assert float(schedule(20)) == pytest.approx(4e-3)  # peak of the first cycle
    opt = make_optimizer(cnn_recipe(lr_schedule="triangular"), 1e-3, 5)
    assert isinstance(opt._learning_rate, TriangularCyclicalLearningRate)


def test_phase_callbacks_early_stopping_and_plateau():
    callbacks = phase_callbacks(cnn_recipe(patience=4), "val_accuracy", "max")
    assert [type(c).__name__ for c in callbacks] == ["ResumableEarlyStopping"]
    assert callbacks[0].patience == 4
    assert not callbacks[0].restore_best_weights  # each phase's best weights come from its best checkpoint
    resumed = phase_callbacks(
        cnn_recipe(patience=4),
        "val_accuracy",
        "max",
        state={"early_stopping": {"wait": 3, "best": 0.7, "best_epoch": 5}},
    )[0]
    resumed.on_train_begin()  # Keras resets the counters here; a resumed trial keeps its own
    assert (resumed.wait, resumed.best, resumed.best_epoch) == (3, 0.7, 5)
    assert resumed.state() == {"wait": 3, "best": 0.7, "best_epoch": 5}
    callbacks = phase_callbacks(
        cnn_recipe(lr_schedule="reduce_on_plateau", plateau_factor=0.5, plateau_patience=2), "val_accuracy", "max"
    )
    plateau = callbacks[1]
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau) and plateau.factor == 0.5 and plateau.patience == 2


ALL_AUGMENTATIONS = dict(aug_flip=True, aug_rotation=0.2, aug_zoom=0.2, aug_contrast=0.3, aug_crop=0.2, aug_noise=0.05)


def test_augmentation_runs_only_in_training():
    layers = augmentation_layers(cnn_recipe(**ALL_AUGMENTATIONS), 32, seed=1)
    names = [layer.name for layer in layers]
    assert [n for n in names if "scale" not in n] == [
        "aug_flip",
        "aug_rotation",
        "aug_zoom",
        "aug_crop",
        "aug_contrast",
        "aug_noise",
    ]
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model = keras.Sequential([keras.Input((32, 32, 3)), *layers])
    np.testing.assert_allclose(model(images, training=False), images, rtol=1e-5)
    trained = keras.ops.convert_to_numpy(model(images, training=True))
    assert trained.shape == images.shape and not np.allclose(trained, images)


def test_no_augmentation_when_strengths_are_zero():
    off = dict(aug_flip=False, aug_rotation=0.0, aug_zoom=0.0, aug_contrast=0.0, aug_crop=0.0, aug_noise=0.0)
    assert augmentation_layers(cnn_recipe(**off), 32, seed=0) == []


def test_random_crop_resize_crops_in_training_and_round_trips_its_config():
    layer = RandomCropResize(0.5, seed=3)
    ramp = np.tile(np.arange(8, dtype="float32")[None, :, None, None], (1, 1, 8, 3)).reshape(1, 8, 8, 3)
    out = keras.ops.convert_to_numpy(layer(ramp, training=True))
    assert out.shape == (1, 8, 8, 3) and out.max() - out.min() < 7  # a window of half the range, stretched
    assert RandomCropResize.from_config(layer.get_config()).get_config() == layer.get_config()


def test_cnn_head_dense_units_and_mish():
    model = build_cnn(cnn_recipe(dense_units=64, activation="mish"), num_classes=5, seed=0)
    dense = model.get_layer("dense")
    assert dense.units == 64 and dense.activation.__name__ == "mish"
    assert model.output_shape == (None, 5)
    no_dense = build_cnn(cnn_recipe(dense_units=0), num_classes=5, seed=0)
    assert "dense" not in [layer.name for layer in no_dense.layers]


class ListReporter(Reporter):
    def __init__(self, tmp_path, prune_after=None, interrupt_at=None, epoch_budget=None):
        super().__init__(0, tmp_path, "val_accuracy", seed=0, epoch_budget=epoch_budget)
        self.prune_after = prune_after
        self.interrupt_at = interrupt_at

    def report(self, epoch, metrics):
        if epoch == self.interrupt_at:
            raise KeyboardInterrupt  # Ctrl-C during this epoch: its checkpoint is never written
        super().report(epoch, metrics)

    def _send(self, epoch, value):
        pass

    def should_prune(self):
        return self.prune_after is not None and len(self.history) >= self.prune_after


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from leafsearch.data import synthetic

    folder = tmp_path_factory.mktemp("leaves")
    synthetic.generate(folder, total=84, image_size=32, seed=0)
    return folder


@pytest.mark.slow  # trains a real model for epochs: seconds each
def test_objective_trains_reports_every_epoch_and_returns_the_best(tmp_path, tiny_folder, monkeypatch):
    objective = LeafObjective(tiny_folder, "cnn", max_epochs=2, cache_dir=tmp_path / "cache")
    reporter = ListReporter(tmp_path)
    traces = []  # the train step's Python body runs only while TensorFlow traces it
    train_step = keras.Model.train_step
    monkeypatch.setattr(keras.Model, "train_step", lambda model, data: traces.append(1) or train_step(model, data))
    result = objective(
        {
            "image_size": 32,
            "batch_size": 16,
            "optimizer": "ranger",
            "loss": "sigmoid_focal",
            "lr_schedule": "triangular2",
            "class_weights": True,
            **ALL_AUGMENTATIONS,
        },
        reporter,
    )
    assert [row["epoch"] for row in reporter.history] == [0, 1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(reporter.history[0])
    assert result["val_accuracy"] == max(row["val_accuracy"] for row in reporter.history)
    assert result["epochs"] == 2
    assert len(traces) == 1  # the optimizer is built before `fit`, so its first trace is its only one
    measured = json.loads((tmp_path / "costs.json").read_text())  # a trial that trained to its end is measured
    assert measured["params"] > 0 and measured["infer_ms"] > 0


@pytest.mark.slow  # trains a real model for epochs: seconds each
def test_objective_stops_when_pruned(tmp_path, tiny_folder):
    objective = LeafObjective(tiny_folder, "cnn", max_epochs=3, cache_dir=tmp_path / "cache")
    reporter = ListReporter(tmp_path, prune_after=1)
    with pytest.raises(TrialPruned):
        objective({"image_size": 32, "batch_size": 32}, reporter)
    assert len(reporter.history) == 1
    # Nobody picks a pruned trial: its model is not measured beyond its (free) parameter count...
    assert set(json.loads((tmp_path / "costs.json").read_text())) == {"params"}
    # ...unless the study bounds or optimises a cost: then the model is measured before it trains.
    first = ListReporter(tmp_path / "costs_first", prune_after=1)
    first.costs_first = True
    with pytest.raises(TrialPruned):
        objective({"image_size": 32, "batch_size": 32}, first)
    assert json.loads((tmp_path / "costs_first" / "costs.json").read_text())["infer_ms"] > 0


def test_nan_loss_fails_the_trial(tmp_path, tiny_folder):
    objective = LeafObjective(tiny_folder, "cnn", max_epochs=2, cache_dir=tmp_path / "cache")
    with pytest.raises(TrialFailed, match="^nan loss$"):
        objective({"image_size": 32, "batch_size": 16, "learning_rate": 1e30}, ListReporter(tmp_path))


def optimizer_steps(folder, name="model.weights.h5") -> int:
    import h5py

    with h5py.File(folder / name) as saved:
        return int(saved["optimizer/vars/0"][()])  # Keras creates the iteration counter first


@pytest.mark.slow  # trains real models for several epochs
def test_an_interrupted_trial_continues_from_its_last_checkpoint(tmp_path, tiny_folder):
    objective = LeafObjective(tiny_folder, "cnn", max_epochs=4, cache_dir=tmp_path / "cache")
    params = {
        "image_size": 32,
        "batch_size": 16,
        "patience": 10,
        "lr_schedule": "reduce_on_plateau",
        "optimizer": "ranger",
    }
    first = ListReporter(tmp_path / "trial", interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        objective(params, first)
    store = CheckpointStore(first.checkpoint_dir)
    folder, state = store.latest()
    assert state["epoch"] == 1 and state["phase_epoch"] == 2 and not state["phase_done"]
    steps = optimizer_steps(folder)  # after two epochs
    assert steps > 0

    again = ListReporter(tmp_path / "trial")
    result = objective(params, again)
    assert again.resumed_from_epoch == 2
    assert again.history[:2] == first.history  # taken from the checkpoint, not trained again
    assert [row["epoch"] for row in again.history] == [0, 1, 2, 3] and result["epochs"] == 4
    last, state = store.latest()
    assert state["epoch"] == 3 and optimizer_steps(last) == 2 * steps  # the optimizer state went on too
    assert set(store.epochs()) <= {state["best"], 3}  # old checkpoints pruned: the best and the last


@pytest.mark.slow  # trains real models for several epochs
def test_a_trial_continued_twice_keeps_the_batch_size_it_trained_with(tmp_path, tiny_folder):
    """After an out-of-memory retry a trial trains at half the sampled batch size; every
    continuation must train at that size and record it, not the sampled one, again."""
    params = {"image_size": 32, "batch_size": 32, "patience": 10}
    halved = {**params, "batch_size": 16}  # what the retry after an out-of-memory error trains with
    objective = LeafObjective(tiny_folder, "cnn", max_epochs=3, cache_dir=tmp_path / "cache")
    store = CheckpointStore(tmp_path / "trial" / "checkpoints")
    with pytest.raises(KeyboardInterrupt):
        objective(halved, ListReporter(tmp_path / "trial", interrupt_at=1))
    folder, state = store.latest()
    steps = optimizer_steps(folder)  # one epoch at batch size 16
    assert state["batch_size"] == 16 and steps == math.ceil(len(objective.data(32).train_idx) / 16)

    with pytest.raises(KeyboardInterrupt):  # continued with the sampled parameters, as the study does
        objective(params, ListReporter(tmp_path / "trial", interrupt_at=2))
    folder, state = store.latest()
    assert state["epoch"] == 1 and state["batch_size"] == 16 and optimizer_steps(folder) == 2 * steps

    again = ListReporter(tmp_path / "trial")
    assert objective(params, again)["epochs"] == 3 and again.resumed_from_epoch == 2
    folder, state = store.latest()
    assert state["epoch"] == 2 and state["batch_size"] == 16 and optimizer_steps(folder) == 3 * steps


class TwoPhaseCNN(LeafObjective):
    """The EfficientNet recipe's shape (two phases, the second on a changed model) on the cheap CNN."""

    def build(self, recipe, num_classes, seed):
        model, _ = super().build(recipe, num_classes, seed)

        def freeze_first_conv(model):
            next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)).trainable = False

        return model, [Phase("transfer", 1e-3, 2), Phase("finetune", 1e-4, 2, prepare=freeze_first_conv)]


@pytest.mark.slow  # trains real models for several epochs
def test_a_trial_interrupted_in_its_second_phase_continues_there(tmp_path, tiny_folder):
    objective = TwoPhaseCNN(tiny_folder, "cnn", max_epochs=4, cache_dir=tmp_path / "cache")
    params = {"image_size": 32, "batch_size": 16, "patience": 10}
    first = ListReporter(tmp_path / "trial", interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        objective(params, first)
    state = CheckpointStore(first.checkpoint_dir).latest()[1]
    assert (state["phase_name"], state["phase_epoch"], state["epoch"]) == ("finetune", 1, 2)
    again = ListReporter(tmp_path / "trial")
    objective(params, again)
    assert again.resumed_from_epoch == 3 and [row["epoch"] for row in again.history] == [0, 1, 2, 3]


@pytest.mark.slow  # trains real models for several epochs
def test_an_epoch_budget_stops_the_trial_and_a_larger_one_extends_it(tmp_path, tiny_folder):
    objective = TwoPhaseCNN(tiny_folder, "cnn", max_epochs=4, cache_dir=tmp_path / "cache")
    params = {"image_size": 32, "batch_size": 16, "patience": 10}
    short = ListReporter(tmp_path / "a", epoch_budget=1)
    assert objective(params, short)["epochs"] == 1
    copy_checkpoints(tmp_path / "a", tmp_path / "b")  # what Hyperband does for the trial it promotes
    longer = ListReporter(tmp_path / "b", epoch_budget=3)
    assert objective(params, longer)["epochs"] == 3
    assert longer.resumed_from_epoch == 1 and longer.history[0] == short.history[0]
    assert CheckpointStore(longer.checkpoint_dir).latest()[1]["phase_name"] == "finetune"


def test_cnn_with_every_augmentation_saves_and_loads_with_identical_predictions(tmp_path):
    model = build_cnn(cnn_recipe(**ALL_AUGMENTATIONS), num_classes=3, seed=0)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    path = tmp_path / "cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("aug_crop"), RandomCropResize)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6)


def test_a_fresh_session_keeps_the_precision_policy():
    from leafsearch.training.loop import fresh_session

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        fresh_session()
        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
