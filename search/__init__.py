"""The engine-agnostic search layer: the space DSL, the study spec, one study loop over thin engine
adapters, trial execution, records and reports.

It knows nothing of leaves, images or Keras models; the application plugs in an objective
`objective(params, reporter) -> dict[str, float]`.
"""

from search.errors import SearchAborted, TrialPruned, UsageError
from search.space import Bool, Choice, Fixed, Float, Int, Param, Space
from search.spacefile import load_space_file
from search.study import Study

__all__ = [
    "Bool",
    "Choice",
    "Fixed",
    "Float",
    "Int",
    "Param",
    "Space",
    "SearchAborted",
    "Study",
    "TrialPruned",
    "UsageError",
    "load_space_file",
]
