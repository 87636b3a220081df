"""The Optuna engine against the CI PostgreSQL server going away: through a TCP proxy the test owns
(tests/search/tcp_proxy.py), which resets and refuses connections and then lets them through, in
this process with the fake objectives (no training). Through the command line, with real
trials and workers: tests/leafsearch/test_storage_faults.py."""

import threading
import time
import uuid
import warnings

import optuna
import pytest
from optuna.storages._heartbeat import get_heartbeat_thread

from search.engines import patience as patience_module
from search.engines.optuna import adapter
from search.engines.optuna import storage as storage_module
from search.engines.optuna.storage import counts_toward_target, make_storage, storage_patience
from search.errors import UsageError
from search.options import RunOptions
from tests.search.fakes import SPACE, SPEC, run
from tests.search.tcp_proxy import postgres_url, proxied  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow  # PostgreSQL


def test_a_study_rides_out_outages_mid_trial_and_between_trials(tmp_path, proxied, postgres_url):  # noqa: F811
    proxy, url = proxied
    name = f"o{uuid.uuid4().hex[:8]}"

    def objective(params, reporter):
        number = reporter.trial_number
        for epoch in range(3):
            if number == 1 and epoch == 0:
                proxy.down()  # mid-trial: its first two epochs are reported while the server is away
            if number == 1 and epoch == 2:
                proxy.up()
            accuracy = 0.1 * (epoch + 1) + params["width"] / 100
            reporter.report(epoch, {"val_accuracy": accuracy, "val_loss": 1.5 - accuracy})
            assert not reporter.should_prune()
        if number == 2:
            proxy.outage(2.0)  # between trials: the loop tells and asks while it is away
        return {"val_accuracy": accuracy}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(tmp_path, objective, trials=4, name=name, storage=url, pruner="none")
    assert not [w for w in caught if "Heartbeat of storage" in str(w.message)]
    out = (tmp_path / "out.txt").read_text()
    assert out.count(" unreachable (OperationalError: ") == 2, out
    assert out.count(f"Storage {url.replace('leafsearch-ci', '***')} is back after") == 2
    study = optuna.load_study(study_name=name, storage=postgres_url)
    counted = [t for t in study.trials if counts_toward_target(t)]
    assert [t.number for t in counted] == [0, 1, 2, 3]  # the target, exactly
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    assert sorted(study.trials[1].intermediate_values) == [0, 1, 2]  # the epochs reported while away arrived
    optuna.delete_study(study_name=name, storage=postgres_url)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # this test asks Optuna directly
def test_the_heartbeat_outlives_an_outage_and_no_trial_is_declared_dead_for_it(
    tmp_path,
    proxied,  # noqa: F811
    postgres_url,  # noqa: F811
    monkeypatch,
):
    proxy, url = proxied
    monkeypatch.setattr(storage_module, "HEARTBEAT_S", 2)  # a beat every 2 s, stale after 3 s silent
    monkeypatch.setattr(storage_module, "GRACE_S", 3)
    monkeypatch.setattr(adapter, "HEARD_S", 4)
    monkeypatch.setattr(patience_module, "MAX_DELAY_S", 0.1)  # the waiting worker is back first, before any beat
    name = f"h{uuid.uuid4().hex[:8]}"
    # Another machine's worker, training a trial: its heartbeat thread goes through the proxy too.
    elsewhere = make_storage(tmp_path, url, storage_patience(url, 60))
    trial = optuna.create_study(storage=elsewhere, study_name=name).ask()
    trial.set_user_attr("host", "another-machine")
    trial.set_user_attr("pid", 1)
    beating = get_heartbeat_thread(trial._trial_id, trial.study._storage)
    # This worker, waiting for that trial: it looks for dead trials every moment (as the loop does).
    options = RunOptions(name, tmp_path, trials=1, storage=url, algorithm="tpe", pruner="none")
    engine = adapter.OptunaEngine(SPACE, SPEC, options)
    engine.stored_identity()
    notes, stop = [], threading.Event()

    def waiting_worker():
        while not stop.is_set():
            notes.extend(engine.requeue_orphans())
            time.sleep(0.2)

    looking = threading.Thread(target=waiting_worker, daemon=True)
    beating.start()
    looking.start()
    try:
        time.sleep(1)
        proxy.down()
        time.sleep(4)  # every heartbeat is now older than the grace period
        proxy.up()
        time.sleep(5)  # beyond HEARD_S: the live trial has beaten again meanwhile
        assert beating._thread.is_alive()  # Optuna's thread would have died at the first failed beat
        assert notes == []
        assert optuna.load_study(study_name=name, storage=postgres_url).trials[0].state.name == "RUNNING"
        beating.join()  # its machine goes silent now: the trial is declared dead after all
        deadline = time.monotonic() + 30
        while not notes:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert notes == [
            "Trial 0 was left running by a process that died: queued to continue from its last checkpoint."
        ]
    finally:
        proxy.up()
        stop.set()
        looking.join(timeout=30)
        if beating._thread.is_alive():
            beating.join()
    optuna.delete_study(study_name=name, storage=postgres_url)


@pytest.mark.parametrize("wrong", ["password", "database"])
def test_a_wrong_password_or_database_is_a_usage_error_at_once_not_an_outage(postgres_url, wrong):  # noqa: F811
    url = postgres_url.replace("leafsearch-ci", "nope") if wrong == "password" else postgres_url + "_nosuch"
    notes = []
    started = time.monotonic()
    with pytest.raises(UsageError, match="--storage: cannot open .*(password authentication|does not exist)"):
        make_storage(None, url, storage_patience(url, 60, notes.append))
    assert time.monotonic() - started < 5 and notes == []
