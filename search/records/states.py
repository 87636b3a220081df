"""How a trial stands: one enum for the loop, both engine adapters, trial execution and records.

Its values are the strings the leaderboard has always written (`leaderboard.csv`'s `state`
column, `run.json`), and a `TrialState` is a `str`: it compares equal to them, so a leaderboard
read back from its CSV and one built in memory are filtered the same way.
"""

from __future__ import annotations

import enum


class TrialState(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"
    INFEASIBLE = "INFEASIBLE"  # its model broke a bound of the study before its first epoch
    # Two the loop tells the engine, which keeps the trial open for the next run to continue; the
    # leaderboard shows them as FAIL meanwhile:
    INTERRUPTED = "INTERRUPTED"  # the user's Ctrl-C
    BAD_INPUT = "BAD_INPUT"  # bad input raised by the objective (the user fixes it and runs again)

    @property
    def shown(self) -> TrialState:
        """The state the leaderboard and `run.json` show."""
        return TrialState.FAIL if self in (TrialState.INTERRUPTED, TrialState.BAD_INPUT) else self
