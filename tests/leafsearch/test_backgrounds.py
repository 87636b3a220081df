"""Background photos are a training-only input: checked before a study starts (from `--backgrounds`
or the space file), never read again to evaluate, export or predict once the study is done."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from leafsearch.cli.main import main
from tests.leafsearch.test_cli import leafsearch
from tests.leafsearch.test_model_commands import demo_data

SPACE = """from search import Fixed, Space, Study
SPACE = Space(image_size=Fixed(32), batch_size=Fixed(16), aug_background=Fixed(0.5){extra})
STUDY = Study(pipeline="cnn", trials=1, max_epochs=1)
"""


def photos(folder: Path, count: int = 3) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / f"wall{i}.png")
    return folder


@pytest.mark.parametrize(
    "where, fragment",
    [
        (
            "gone",
            "parameter `backgrounds` '{tmp}/gone': no such folder; set it in {space} to a folder of background photos",
        ),
        ("empty", "parameter `backgrounds` '{tmp}/empty': no images in it; set it in {space}"),
    ],
)
def test_a_space_files_backgrounds_are_checked_before_the_study(tmp_path, capsys, where, fragment):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    space = tmp_path / "walls.py"
    space.write_text(SPACE.format(extra=f", backgrounds=Fixed({str(tmp_path / where)!r})"))
    # The data folder is missing too: without this check the run would fail on --data, later.
    assert main(["run", str(space), "--results", str(tmp_path / "results"), "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment.format(tmp=tmp_path, space=space) in err
    assert not (tmp_path / "results").exists()  # nothing written


def test_backgrounds_flag_still_names_the_flag(tmp_path, capsys):
    space = tmp_path / "walls.py"
    space.write_text(SPACE.format(extra=""))
    (tmp_path / "empty").mkdir()
    assert (
        main(["run", str(space), "--results", str(tmp_path / "results"), "--backgrounds", str(tmp_path / "empty")]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--backgrounds {tmp_path / 'empty'}: no images in it" in err
    assert not (tmp_path / "results").exists()


def predictions(model: Path, images: Path, out: Path) -> list[dict]:
    assert main(["predict", str(model), str(images), "--output", str(out)]) == 0
    with open(out, newline="") as handle:
        return list(csv.DictReader(handle))


def evaluation(results: Path, data: Path) -> dict:
    assert main(["evaluate", "--study", "walls", "--results", str(results), "--data", str(data)]) == 0
    [stored] = (results / "walls" / "evaluations").glob("0-*.json")
    return {k: v for k, v in json.loads(stored.read_text()).items() if k != "evaluated_at"}


@pytest.mark.slow
def test_a_study_trained_on_background_photos_is_evaluated_and_exported_without_them(tmp_path, capsys):
    data = demo_data(tmp_path / "leaves", 32, seed=0)
    walls = photos(tmp_path / "walls")
    space = tmp_path / "walls.py"
    space.write_text(SPACE.format(extra=""))
    done = leafsearch("run", space, "--data", data, "--backgrounds", walls, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # The run said once what every trial trains with, the leaves' default flips and the photos included.
    [line] = [line for line in done.stdout.splitlines() if line.startswith("Fixed recipe")]
    assert (
        "aug_flip=both aug_rotation=0.1 aug_zoom=0.1" in line
        and f"aug_background=0.5 backgrounds={walls}" in line
        and "photo_share=0.5" in line
    )
    results = tmp_path / "results"
    assert json.loads((results / "walls" / "trials" / "0" / "params.json").read_text())["backgrounds"] == str(walls)

    before = tmp_path / "before.keras"
    assert main(["export", "--study", "walls", "--results", str(results), "--output", str(before)]) == 0
    expected = predictions(before, data, tmp_path / "before.csv")
    scored = evaluation(results, data)

    shutil.move(walls, tmp_path / "moved")  # the photos are gone from where the study read them
    capsys.readouterr()
    assert evaluation(results, data) == scored
    after = tmp_path / "after.keras"
    assert main(["export", "--study", "walls", "--results", str(results), "--output", str(after)]) == 0
    found = predictions(after, data, tmp_path / "after.csv")
    assert [(row["path"], row["class"]) for row in found] == [(row["path"], row["class"]) for row in expected]
    np.testing.assert_allclose(
        [float(r["probability"]) for r in found], [float(r["probability"]) for r in expected], rtol=1e-5
    )
    assert "Traceback" not in capsys.readouterr().err
