"""What a finished study gives back: cost columns, TensorBoard HParams, and evaluate / export /
predict on its best trial. One real tiny study (one subprocess run) serves every test; the other
commands run in this process through the CLI's `main` (Keras is loaded once)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leafsearch.cli.main import main
from tests.leafsearch.test_cli import leafsearch

pytestmark = pytest.mark.slow  # every test uses the module's study, run in a subprocess

EVALUATION_KEYS = {"trial", "data", "images", "accuracy", "per_class", "subsets", "confusion_png", "evaluated_at"}
# Every augmentation (background replacement too), the leaf mask head, Ranger and Mish, so the export has every piece
# a trial can put in a model; trials chosen by how they do off the black background.
EVERYTHING = """from search import Fixed, Space, Study
SPACE = Space(image_size=Fixed(32), batch_size=Fixed(16), aug_flip=Fixed(True), aug_rotation=Fixed(0.1),
              aug_zoom=Fixed(0.1), aug_contrast=Fixed(0.1), aug_crop=Fixed(0.1), aug_noise=Fixed(0.02),
              aug_background=Fixed(0.5), leaf_mask=Fixed(True), optimizer=Fixed("ranger"), activation=Fixed("mish"))
STUDY = Study(pipeline="cnn", metric="val_wild_accuracy", trials=1, max_epochs=1)
"""


def demo_data(folder: Path, size: int, seed: int) -> Path:
    assert main(["demo-data", str(folder), "--images", "112", "--image-size", str(size), "--seed", str(seed)]) == 0
    return folder


@pytest.fixture(scope="module")
def test_folder(tmp_path_factory) -> Path:
    """Test images of another draw, at 48 px: predict and evaluate resize them to the trial's 32."""
    return demo_data(tmp_path_factory.mktemp("test") / "leaves", 48, seed=3)


@pytest.fixture(scope="module")
def study_run(tmp_path_factory, test_folder) -> dict:
    """A one-trial study `cnn` in <tmp>/results (the one subprocess of this module), its model
    with every augmentation, trained with Ranger, scored on the test folder as it ends (`--test`)."""
    cwd = tmp_path_factory.mktemp("study")
    data = demo_data(cwd / "leaves", 32, seed=0)
    space = cwd / "cnn.py"
    space.write_text(EVERYTHING)
    done = leafsearch(
        "run", space, "--data", data, "--trials", "1", "--max-epochs", "1", "--test", test_folder, cwd=cwd
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [stored] = (cwd / "results" / "cnn" / "evaluations").glob("0-leaves-*.json")
    return {"results": cwd / "results", "stdout": done.stdout, "evaluation": json.loads(stored.read_text())}


@pytest.fixture(scope="module")
def results(study_run) -> Path:
    return study_run["results"]


@pytest.fixture(scope="module")
def exported(results, test_folder, tmp_path_factory) -> dict:
    """The study's best trial exported, and its predictions on the test folder as CSV rows."""
    out = tmp_path_factory.mktemp("export")
    model = out / "model.keras"
    assert main(["export", "--study", "cnn", "--results", str(results), "--output", str(model)]) == 0
    csv_path = out / "predictions.csv"
    assert main(["predict", str(model), str(test_folder), "--output", str(csv_path)]) == 0
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {"model": model, "rows": rows}


def test_leaderboard_records_the_trial_costs(results):
    board = pd.read_csv(results / "cnn" / "leaderboard.csv")
    row = board.iloc[0]
    assert list(board.columns[:4]) == ["trial", "state", "val_wild_accuracy", "val_loss"]  # the study's metric
    history = json.loads((results / "cnn" / "trials" / "0" / "history.json").read_text())
    assert 0 <= history[0]["val_wild_accuracy"] <= 1 and "val_accuracy" in history[0]
    import keras

    assert row["params"] > 100_000 and float(row["params"]).is_integer()
    assert 0 < row["infer_ms"] < 1000
    if keras.backend.backend() == "tensorflow":
        assert row["flops"] > 2 * row["params"]  # convolutions use each weight at every pixel, a dense layer once


def test_tensorboard_has_the_hparams_session_and_epoch_scalars(results):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(results / "cnn" / "tb" / "0"), size_guidance={"tensors": 0})
    events.Reload()
    assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(events.PluginTagToContent("hparams"))
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    end = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_end_info"]
    )
    assert end.session_end_info.status == api_pb2.STATUS_SUCCESS  # not "unknown": the trial completed
    assert {"val_accuracy", "val_loss", "accuracy", "loss"} <= set(events.Tags()["tensors"])


def test_evaluate_stores_accuracy_that_predict_reproduces(study_run, results, test_folder, exported, capsys):
    assert main(["evaluate", "--study", "cnn", "--results", str(results), "--data", str(test_folder)]) == 0
    out = capsys.readouterr().out
    [stored] = (results / "cnn" / "evaluations").glob("0-leaves-*.json")  # one per trial and test folder
    record = json.loads(stored.read_text())
    # `run --test` had scored the same checkpoint the same way and said so as `evaluate` does.
    scored = {k: v for k, v in study_run["evaluation"].items() if k != "evaluated_at"}
    assert scored == {k: v for k, v in record.items() if k != "evaluated_at"}
    assert out.splitlines()[0] in study_run["stdout"].splitlines() and f"accuracy {record['accuracy']:.4f}" in out
    assert (
        set(record) == EVALUATION_KEYS and record["trial"] == 0 and record["images"] == 112 and record["subsets"] == {}
    )
    png = results / "cnn" / record["confusion_png"]
    assert (
        record["confusion_png"] == f"evaluations/{stored.stem}-confusion.png"
        and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    )
    # By hand, from predict's CSV: the true class is the image's folder.
    truth = [Path(row["path"]).parent.name for row in exported["rows"]]
    hits = [row["class"] == true for row, true in zip(exported["rows"], truth)]
    assert record["accuracy"] == pytest.approx(sum(hits) / len(hits))
    for name, value in record["per_class"].items():
        mine = [hit for hit, true in zip(hits, truth) if true == name]
        assert value == pytest.approx(sum(mine) / len(mine))


def test_exported_model_predicts_the_classes_of_the_trial_model(results, test_folder, exported):
    from leafsearch.trained import checkpoint, predict

    trained = checkpoint.load(results, "cnn")
    paths = [Path(row["path"]) for row in exported["rows"]]
    expected = predict.probabilities(trained.model, paths, trained.image_size).argmax(axis=1)
    assert [row["class"] for row in exported["rows"]] == [trained.class_names[i] for i in expected]
    assert all(0 < float(row["probability"]) <= 1 for row in exported["rows"])
    labels = json.loads(exported["model"].with_suffix(".labels.json").read_text())
    assert labels["class_names"] == list(trained.class_names) and labels["trial"] == 0 and labels["image_size"] == 32
    import keras

    plain = keras.saving.load_model(exported["model"], compile=False)  # Keras alone opens it
    batch = predict.decode(paths[:4], 32)
    np.testing.assert_allclose(
        plain.predict(batch, verbose=0), trained.model.predict(batch, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_evaluate_scores_each_subset_and_keeps_every_test_folder(results, test_folder, exported, tmp_path, capsys):
    seed_like = tmp_path / "seed-test"
    assert main(["demo-data", str(seed_like), "--subsets", "--images", "84", "--image-size", "32", "--seed", "5"]) == 0
    assert sorted(p.name for p in seed_like.iterdir()) == ["clean", "wild"]
    assert main(["evaluate", "--study", "cnn", "--results", str(results), "--data", str(test_folder)]) == 0
    assert main(["evaluate", "--study", "cnn", "--results", str(results), "--data", str(seed_like)]) == 0
    out = capsys.readouterr().out
    assert "  clean: accuracy" in out and "  wild: accuracy" in out
    [record] = [json.loads(p.read_text()) for p in (results / "cnn" / "evaluations").glob("0-seed-test-*.json")]
    assert set(record["subsets"]) == {"clean", "wild"} and record["images"] == 168
    assert record["accuracy"] == pytest.approx(
        sum(s["accuracy"] * s["images"] for s in record["subsets"].values()) / 168
    )
    assert (
        len(list((results / "cnn" / "evaluations").glob("0-*.json"))) == 2
    )  # the first folder's result is still there
    assert main(["report", "--study", "cnn", "--results", str(results), "--format", "markdown"]) == 0
    report = capsys.readouterr().out
    assert "/seed-test |" in report and "clean 0." in report and "/leaves |" in report


BLOCKED_IMPORTS = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("leafsearch", "search"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Blocked())
import numpy as np, keras
model = keras.saving.load_model(sys.argv[1], compile=False)
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
"""


def test_the_export_loads_and_predicts_where_leafsearch_was_never_imported(exported, tmp_path):
    from leafsearch.trained import predict

    paths = [Path(row["path"]) for row in exported["rows"]]
    np.save(tmp_path / "images.npy", predict.decode(paths, 32))  # the images as `predict` saw them
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKED_IMPORTS,
            str(exported["model"]),
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.npy"),
        ],
        cwd=tmp_path,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    probabilities = np.load(tmp_path / "out.npy")
    names = json.loads(exported["model"].with_suffix(".labels.json").read_text())["class_names"]
    assert [names[i] for i in probabilities.argmax(axis=1)] == [row["class"] for row in exported["rows"]]
    np.testing.assert_allclose(
        probabilities.max(axis=1), [float(row["probability"]) for row in exported["rows"]], rtol=1e-4
    )


@pytest.mark.parametrize(
    "make_args, fragment",
    [
        (lambda r, m, t: ["predict", str(m), str(t / "missing.jpg")], "no such file or folder"),
        (lambda r, m, t: ["predict", str(m), str(r / "cnn" / "study.json")], "not an image file"),
        (lambda r, m, t: ["evaluate", "--study", "nope", "--results", str(r), "--data", str(t)], "no study at"),
        (
            lambda r, m, t: ["evaluate", "--study", "cnn", "--trial", "7", "--results", str(r), "--data", str(t)],
            "has no trial 7",
        ),
        (
            lambda r, m, t: ["export", "--study", "cnn", "--results", str(r), "--output", str(t / "model.h5")],
            "ends in .keras",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(results, test_folder, exported, capsys, make_args, fragment):
    assert main(make_args(results, exported["model"], test_folder)) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_evaluate_refuses_a_test_folder_of_other_classes(results, test_folder, tmp_path, capsys):
    other = tmp_path / "other"
    for name in ("Apple", "Kiwi"):
        (other / name).mkdir(parents=True)
        for image in sorted((test_folder / "Apple").iterdir())[:2]:
            (other / name / image.name).write_bytes(image.read_bytes())
    assert main(["evaluate", "--study", "cnn", "--results", str(results), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "class folders differ" in err and "unknown: Kiwi" in err and err.count("\n") == 1
    before = sorted(p.name for p in (results / "cnn").iterdir())
    space = tmp_path / "cnn.py"
    space.write_text(EVERYTHING)
    leaves = Path(json.loads((results / "cnn" / "trials" / "0" / "run.json").read_text())["data"])
    # `run --test` refuses it before the study starts (and before Keras loads), the study untouched.
    assert (
        main(
            [
                "run",
                str(space),
                "--data",
                str(leaves),
                "--results",
                str(results),
                "--study",
                "cnn",
                "--test",
                str(other),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--test " in err and "unknown: Kiwi" in err and err.count("\n") == 1
    assert sorted(p.name for p in (results / "cnn").iterdir()) == before
