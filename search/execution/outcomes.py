"""How a trial ended: the one table from the exception a trial ends with to the state it leaves.

Three places read it (each once kept its own list): a trial's child process (what it sends its
parent), the executor (what passes through it without a retry) and the study loop (what state it
records and tells the engine).
"""

from __future__ import annotations

from search.errors import ConstraintViolated, OutOfMemory, TrialFailed, TrialPruned, UsageError, one_line
from search.records.states import TrialState

# In the order they are matched. Any other exception of the objective is a failure: the executor
# records it as a TrialFailed with its one-line form.
ENDINGS: tuple[tuple[type[BaseException], TrialState], ...] = (
    (TrialPruned, TrialState.PRUNED),  # the reporter said stop: scored by its best value so far
    (ConstraintViolated, TrialState.INFEASIBLE),  # its model breaks a bound; the search goes on
    (UsageError, TrialState.BAD_INPUT),  # left for the next run; the search stops (exit code 2)
    (KeyboardInterrupt, TrialState.INTERRUPTED),  # left for the next run; the search stops (exit code 130)
    (OutOfMemory, TrialState.FAIL),  # the executor retries it once with half the batch size first
    (TrialFailed, TrialState.FAIL),  # recorded with its reason; the search goes on
)
ENDING_TYPES = tuple(kind for kind, _ in ENDINGS)


def ending(exc: BaseException) -> type[BaseException] | None:
    """The exception of the table that `exc` is; None when it is no way for a trial to end."""
    return next((kind for kind in ENDING_TYPES if isinstance(exc, kind)), None)


def state_of(exc: BaseException) -> TrialState | None:
    """The state a trial ending with `exc` is left in; None when it is no way for a trial to end
    (a bug in the caller, raised as it is)."""
    kind = ending(exc)
    return None if kind is None else dict(ENDINGS)[kind]


def as_ending(exc: Exception) -> BaseException:
    """`exc`, raised by the objective in a trial's child process, as the exception of the table its
    parent raises: a MemoryError is OutOfMemory, anything else unknown a TrialFailed, and a
    failure's message is its one-line form."""
    kind = OutOfMemory if isinstance(exc, MemoryError) else ending(exc) or TrialFailed
    return kind(one_line(exc) if dict(ENDINGS)[kind] is TrialState.FAIL else str(exc))
