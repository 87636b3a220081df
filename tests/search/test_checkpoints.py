"""Epoch checkpoints: atomic, bounded on disk, and movable to a trial that continues another."""

import json

import pytest

from search.records.checkpoints import CheckpointStore, copy_checkpoints, move_checkpoints


def writer(payload: str):
    return lambda folder: (folder / "weights.bin").write_text(payload)


def test_latest_is_the_last_saved_and_old_ones_are_pruned_but_kept_epochs_stay(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    assert store.latest() is None
    for epoch in range(4):
        store.save(epoch, writer(f"w{epoch}"), {"phase": 0, "history": list(range(epoch + 1))}, keep={1})
    folder, state = store.latest()
    assert state["epoch"] == 3 and state["history"] == [0, 1, 2, 3]
    assert (folder / "weights.bin").read_text() == "w3"
    assert store.epochs() == [1, 3]  # the last, and the one asked to be kept (the best)
    assert store.load(1)[1]["epoch"] == 1 and store.load(0) is None


def test_a_write_interrupted_half_way_leaves_the_previous_checkpoint_loadable(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(0, writer("good"), {"phase": 0})

    def dies_half_way(folder):
        (folder / "weights.bin").write_text("half")
        raise KeyboardInterrupt  # a kill arriving mid-write

    with pytest.raises(KeyboardInterrupt):
        store.save(1, dies_half_way, {"phase": 0})
    folder, state = store.latest()
    assert state["epoch"] == 0 and (folder / "weights.bin").read_text() == "good"
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".tmp")] == []


def test_a_kill_that_skipped_cleanup_still_leaves_the_previous_checkpoint(tmp_path):
    """SIGKILL runs no cleanup: a half-written temporary folder and a folder renamed into place
    without its pointer update must not be taken for the latest."""
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(0, writer("good"), {"phase": 0})
    half = store.folder / ".tmp-epoch-0001-999"
    half.mkdir()
    (half / "weights.bin").write_text("half")
    assert store.latest()[1]["epoch"] == 0
    store.save(1, writer("next"), {"phase": 0})  # the next save clears the leftovers
    assert not half.exists() and store.latest()[1]["epoch"] == 1


def test_a_dangling_pointer_falls_back_on_the_newest_complete_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(0, writer("a"), {"phase": 0})
    (store.folder / "latest.json").write_text(json.dumps({"epoch": 7, "folder": "epoch-0007"}))
    assert store.latest()[1]["epoch"] == 0


def test_move_and_copy_to_a_continuing_trial(tmp_path):
    old, new, extended = tmp_path / "trials" / "1", tmp_path / "trials" / "3", tmp_path / "trials" / "4"
    CheckpointStore(old / "checkpoints").save(2, writer("w"), {"phase": 0})
    assert copy_checkpoints(old, extended) and CheckpointStore(old / "checkpoints").latest() is not None
    assert move_checkpoints(old, new)
    assert CheckpointStore(new / "checkpoints").latest()[1]["epoch"] == 2
    assert CheckpointStore(extended / "checkpoints").latest()[1]["epoch"] == 2
    assert not (old / "checkpoints").exists()
    assert not move_checkpoints(tmp_path / "trials" / "9", tmp_path / "trials" / "10")
