"""Errors the search layer raises; the CLI turns them into one-line messages."""


class UsageError(Exception):
    """Bad input from the user (a space file, a flag, a data folder): exit code 2, no traceback.

    The message is one line that names the file or parameter at fault and the fix.
    """


class TrialPruned(Exception):
    """Raised inside an objective when the reporter says the trial should stop early."""
