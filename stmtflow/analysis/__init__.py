"""Read-only queries on a statement tree: `walk`, the ``find_*`` look-ups, `validate` and
`check_compatibility`. Every public name is re-exported from `stmtflow`."""

from stmtflow.analysis._compat import check_compatibility
from stmtflow.analysis._validate import validate
from stmtflow.analysis._walk import find_handler, find_step, find_waiting_step, walk

__all__ = [
    "check_compatibility",
    "find_handler",
    "find_step",
    "find_waiting_step",
    "validate",
    "walk",
]
