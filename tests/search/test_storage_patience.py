"""Waiting out a storage outage (search/engines/patience.py) and telling an outage from a real
error (search/engines/optuna/faults.py), without a server: errors made the way the drivers make
them. The same against a real PostgreSQL server, through a proxy that drops it: test_storage_outage.py."""

import time

import optuna
import psycopg
import pytest
import sqlalchemy.exc

from search.engines import patience as patience_module
from search.engines.optuna.faults import reason, transient
from search.engines.patience import Patience, StorageDown, StorageUnreachable, duration_text
from search.errors import SearchAborted, one_line


class Down(Exception):
    """What the fake storage raises while it is down."""


class FakeStorage:
    """Down for its first `failures` calls, then answers."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def get(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Down("connection refused")
        return "answer"


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    """Backoff without waiting: the clock the window is measured by still moves."""
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    clock = [time.monotonic()]
    monkeypatch.setattr(patience_module.time, "sleep", sleep)
    monkeypatch.setattr(patience_module.time, "monotonic", lambda: clock[0])
    return slept


def make(window_s=60.0):
    notes = []
    return Patience("Storage db://x", lambda exc: isinstance(exc, Down), window_s, notes.append), notes


def test_transient_errors_are_tried_again_with_backoff_and_said_once_each_way(no_sleeping):
    patience, notes = make()
    storage = FakeStorage(failures=5)
    assert patience.call(storage.get) == "answer" and storage.calls == 6
    assert no_sleeping == [0.5, 1.0, 2.0, 4.0, 8.0]  # doubling, up to MAX_DELAY_S
    assert len(notes) == 2
    assert notes[0].startswith("Storage db://x unreachable (Down: connection refused): waiting up to 1m")
    assert notes[1].startswith("Storage db://x is back after")
    assert patience.call(storage.get) == "answer" and len(notes) == 2  # nothing to say while it answers


def test_a_real_error_is_raised_at_once_and_says_nothing():
    patience, notes = make()

    def wrong_password():
        raise ValueError("password authentication failed")

    with pytest.raises(ValueError, match="password"):
        patience.call(wrong_password)
    assert notes == []


def test_when_the_window_runs_out_it_stops_the_search_saying_since_when(no_sleeping):
    patience, notes = make(window_s=5)
    with pytest.raises(StorageUnreachable) as raised:
        patience.call(FakeStorage(failures=100).get)
    assert isinstance(raised.value, SearchAborted)  # exit code 1 at the command line
    message = str(raised.value)
    assert "\n" not in message and message.startswith("Storage db://x unreachable since ")
    assert "(Down: connection refused); gave up after --storage-patience 5s" in message
    assert "run the same command again" in message
    assert sum(no_sleeping) == pytest.approx(5)  # waited the window, not more
    assert len(notes) == 1  # it started waiting; it never came back


def test_at_once_the_caller_goes_on_without_the_storage():
    patience, notes = make()
    storage = FakeStorage(failures=1)
    with patience.at_once(), pytest.raises(StorageDown, match="connection refused"):
        patience.call(storage.get)
    assert patience.up_for() == 0.0 and len(notes) == 1
    assert patience.call(storage.get) == "answer" and notes[-1].startswith("Storage db://x is back")


def test_durations_read_like_the_flag():
    assert [duration_text(s) for s in (3, 60, 150, 600, 3900)] == ["3s", "1m", "2m 30s", "10m", "1h 05m"]


def _wrapped(orig: BaseException, invalidated=False) -> Exception:
    """An error as Optuna's RDBStorage raises it: SQLAlchemy's wrapper, inside StorageInternalError."""
    error = sqlalchemy.exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)
    try:
        try:
            raise error
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
    except optuna.exceptions.StorageInternalError as outer:
        return outer


def _server(sqlstate: str, message: str) -> psycopg.Error:
    """The error psycopg raises for a server's answer with this SQLSTATE (its class carries it)."""
    return psycopg.errors.lookup(sqlstate)(message)


@pytest.mark.parametrize(
    "orig, invalidated, expected",
    [
        (psycopg.OperationalError('connection to server at "db", port 5432 failed: Connection refused'), False, True),
        (psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), True, True),
        (psycopg.OperationalError("connection failed: FATAL:  the database system is starting up"), False, True),
        (psycopg.OperationalError("connection failed: timeout expired"), False, True),
        (_server("57P01", "terminating connection due to administrator command"), False, True),
        (_server("25006", "cannot execute UPDATE in a read-only transaction"), False, True),
        (psycopg.OperationalError('FATAL:  password authentication failed for user "leaf"'), False, False),
        (psycopg.OperationalError('FATAL:  database "nosuch" does not exist'), False, False),
        (psycopg.OperationalError("failed to resolve host 'nosuch.invalid': Name or service not known"), False, False),
        (_server("42P01", 'relation "trials" does not exist'), False, False),
        (_server("22001", "value too long for type character varying(2048)"), False, False),
    ],
)
def test_outages_are_told_from_real_errors(orig, invalidated, expected):
    error = _wrapped(orig, invalidated)
    assert transient(error) is expected
    assert reason(error) == one_line(orig)  # the driver's words, not Optuna's "invalid data in the commit"


def test_errors_of_no_database_are_real_unless_they_are_the_networks():
    assert transient(ConnectionResetError(104, "Connection reset by peer"))
    assert not transient(ValueError("no such study"))
    assert not transient(optuna.exceptions.UpdateFinishedTrialError("finished"))


def _oracle(tmp_path, keep_ongoing=False):
    """A KerasTuner random-search oracle as the engine makes it, on a project folder in tmp_path."""
    import keras_tuner

    from search.engines.kerastuner.oracles import make_oracle

    hp = keras_tuner.HyperParameters()
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    oracle = make_oracle("random", "val_accuracy", "maximize", hp, seed=0, max_epochs=3)
    oracle._set_project_dir(str(tmp_path), "kerastuner")
    oracle.max_trials = 3
    oracle.keep_ongoing = keep_ongoing
    return oracle


@pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning", "ignore:getName:DeprecationWarning")
@pytest.mark.parametrize("keep_ongoing", [True, False])
def test_a_restarted_chief_keeps_a_trial_for_the_worker_still_training_it(tmp_path, keep_ongoing):
    from keras_tuner.engine.trial import TrialStatus

    first_life = _oracle(tmp_path)
    trial = first_life.create_trial("tuner1")  # tuner1 trains it; the chief is killed meanwhile
    first_life.save()
    chief = _oracle(tmp_path, keep_ongoing)  # started again by hand, its workers still running
    chief.reload()
    other = chief.create_trial("tuner2")
    if not keep_ongoing:  # KerasTuner's own reload: the trial goes to whoever asks first
        assert other.trial_id == trial.trial_id
        return
    assert other.trial_id != trial.trial_id  # not handed to another worker while tuner1 trains it
    assert chief.create_trial("tuner1").trial_id == trial.trial_id  # its own worker gets it back if it asks
    chief.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    trial.status = TrialStatus.COMPLETED
    chief.end_trial(trial)
    chief.end_trial(trial)  # sent again: its reply was lost with the connection
    assert chief.end_order == [trial.trial_id]
    assert trial.trial_id not in chief._retry_queue and "tuner1" not in chief.ongoing_trials
