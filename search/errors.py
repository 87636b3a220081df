"""Errors the search layer raises; the CLI turns them into one-line messages."""


class UsageError(Exception):
    """Bad input from the user (a space file, a flag, a data folder): exit code 2, no traceback.

    The message is one line that names the file or parameter at fault and the fix.
    """


class TrialPruned(Exception):
    """Raised inside an objective when the reporter says the trial should stop early."""


class TrialFailed(Exception):
    """Raised inside an objective to fail the trial with a short reason for the leaderboard
    (e.g. ``nan loss``); the search goes on."""


class OutOfMemory(Exception):
    """The trial ran out of (accelerator or host) memory; the runner retries it once with half
    the batch size."""
