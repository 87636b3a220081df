"""The KerasTuner engine trains the real leaf objective (tiny synthetic leaves, one epoch)."""

import pandas as pd
import pytest
from rich.console import Console

from leafsearch.data import synthetic
from leafsearch.training.objective import LeafObjective
from search import Choice, Fixed, Space, Study
from search.loop import StudyLoop
from search.options import RunOptions
from search.report.display import Display

pytestmark = [
    pytest.mark.slow,  # trains real models through KerasTuner: tens of seconds
    pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:getName:DeprecationWarning"),
]


def test_kerastuner_runs_the_leaf_objective(tmp_path):
    folder = tmp_path / "leaves"
    synthetic.generate(folder, total=84, image_size=32, seed=0)
    space = Space(image_size=Fixed(32), batch_size=Fixed(16), learning_rate=Choice([1e-3, 3e-3]))
    spec = Study(pipeline="cnn", metric="val_accuracy", trials=2, max_epochs=1)
    objective = LeafObjective(folder, "cnn", max_epochs=1, cache_dir=tmp_path / "cache")
    options = RunOptions(
        study_name="leaf", study_dir=tmp_path / "leaf", trials=2, backend="kerastuner", algorithm="random"
    )
    display = Display(spec.metric, console=Console(file=open(tmp_path / "out.txt", "w"), width=200))
    best = StudyLoop(space, spec, objective, options, display).run()
    frame = pd.read_csv(tmp_path / "leaf" / "leaderboard.csv")
    assert frame["trial"].tolist() == [0, 1] and (frame["state"] == "COMPLETE").all(), frame.to_dict("records")
    assert frame["val_accuracy"].between(0, 1).all() and (frame["epochs"] == 1).all()
    assert sorted(frame["param_learning_rate"]) == [1e-3, 3e-3] and (frame["param_image_size"] == 32).all()
    assert best["value"] == frame["val_accuracy"].max() and best["params"]["batch_size"] == 16
