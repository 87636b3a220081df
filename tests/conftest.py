"""Shared test setup: quiet, deterministic TensorFlow on the CPU; and how pytest-xdist shares the
suite out between its workers (`-n 2`, as README.md and .ci/run run it)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# Modules whose tests are independent studies in subprocesses (each with its own tmp_path, its own
# PostgreSQL study name, its own ports): their tests are handed to the workers one by one, so that
# the slowest ones run side by side. Every other module goes whole to one worker, so that a
# module-scoped fixture (a trained study, an EfficientNet build) is made once.
SPREAD = {
    "test_cli",
    "test_fault_tolerance",
    "test_kerastuner_cli",
    "test_kerastuner_objective",
    "test_nothing_left_behind",
    "test_storage_faults",
    "test_training",
    "test_workers",
}


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own choice; only where xdist is installed
def pytest_xdist_make_scheduler(config, log):
    """Under `-n N` (xdist's default `--dist load`): one unit of work per module, or per test of the
    modules in SPREAD. (xdist's `--dist loadgroup` would do it with marks, but it renames the test
    ids to do so, which pytest 9 no longer allows.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if Path(path).stem in SPREAD else path

    return ByModule(config, log)
