"""Loading space files: every problem is one UsageError line naming the file (and line or parameter)."""

import textwrap

import pytest

from search import Float, Study, UsageError, load_space_file

GOOD = """
from search import Choice, Float, Space, Study

SPACE = Space(batch_size=Choice([8, 16]), learning_rate=Float(1e-4, 1e-2, log=True))
STUDY = Study(pipeline="cnn", trials=4, max_epochs=3)
"""


def write(tmp_path, text, name="space.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path, **kwargs) -> str:
    with pytest.raises(UsageError) as info:
        load_space_file(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_loads_space_and_study(tmp_path):
    space, study = load_space_file(
        write(tmp_path, GOOD), known_names={"batch_size", "learning_rate"}, pipelines={"cnn"}
    )
    assert space.names == ["batch_size", "learning_rate"]
    assert isinstance(space["learning_rate"], Float) and space["learning_rate"].log
    assert study == Study(pipeline="cnn", trials=4, max_epochs=3)


def test_missing_file(tmp_path):
    assert load_error(tmp_path / "nope.py") == f"space file not found: {tmp_path / 'nope.py'}"


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "from search import Space\nSPACE = Space(a=\n")
    assert load_error(path).startswith(f"{path}:2: syntax error")


def test_error_while_running_names_file_and_line(tmp_path):
    path = write(tmp_path, "from search import Space, Float\n\nSPACE = Space(a=Float(0, 1, logg=True))\n")
    message = load_error(path)
    assert message.startswith(f"{path}:3: TypeError") and "logg" in message


def test_no_space_and_no_study(tmp_path):
    assert "defines no SPACE" in load_error(write(tmp_path, "X = 1\n"))
    assert "defines no STUDY" in load_error(write(tmp_path, "from search import Space\nSPACE = Space()\n"))
    assert "SPACE is a dict" in load_error(write(tmp_path, "SPACE = {}\n"))


def test_invalid_range_names_file_and_parameter(tmp_path):
    path = write(tmp_path, GOOD.replace("Float(1e-4, 1e-2, log=True)", "Float(1e-2, 1e-4, log=True)"))
    message = load_error(path)
    assert (
        message.startswith(f"{path}: invalid space:")
        and "`learning_rate`" in message
        and "low must be < high" in message
    )


def test_unknown_parameter_and_unknown_pipeline(tmp_path):
    path = write(tmp_path, GOOD.replace("batch_size=", "batch_sise=").replace('"cnn"', '"resnet"'))
    message = load_error(path, known_names={"batch_size", "learning_rate"}, pipelines={"cnn", "efficientnet"})
    assert "parameter `batch_sise`: unknown name" in message
    assert "STUDY pipeline must be one of cnn, efficientnet. Received: 'resnet'" in message


def test_unknown_study_key_is_reported(tmp_path):
    message = load_error(write(tmp_path, GOOD.replace("trials=4", "trails=4")))
    assert "trails" in message and "Study" in message


def test_bad_study_values(tmp_path):
    message = load_error(write(tmp_path, GOOD.replace("trials=4", "trials=0, direction='up'")))
    assert "STUDY trials must be an integer >= 1" in message and "direction must be 'maximize' or 'minimize'" in message


def test_unknown_metric_is_reported(tmp_path):
    path = write(tmp_path, GOOD.replace("trials=4", "trials=4, metric='val_acc'"))
    message = load_error(path, metrics={"val_accuracy", "val_loss"})
    assert "STUDY metric must be one of val_accuracy, val_loss. Received: 'val_acc'" in message
