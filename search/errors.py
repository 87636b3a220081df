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


class SearchAborted(Exception):
    """The search cannot usefully go on (too many failures in a row): exit code 1."""


def one_line(exc: BaseException) -> str:
    """'Type: first line of the message', the one-line form of an error for the leaderboard and
    the terminal. A TrialFailed or UsageError is its reason alone (it was written for the user)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, (TrialFailed, UsageError)):
        return first or "failed"
    return f"{type(exc).__name__}: {first}".rstrip(": ")


class ConstraintViolated(Exception):
    """The trial's model breaks a bound of the study (`infer_ms <= 10`): it ends before training,
    recorded as INFEASIBLE with the bound it broke; the search goes on."""
