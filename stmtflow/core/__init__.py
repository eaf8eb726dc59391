"""Running a workflow, sans I/O: the program, the interpreter and its two drivers.

The interpreter yields the calls it needs (run this action, checkpoint now, set up this handler);
`resume`/`handle_callback` perform them plainly, `aresume`/`ahandle_callback` awaiting. Nothing
here touches a store. Every public name is re-exported from `stmtflow`.
"""

from stmtflow.core._drivers import (
    acancel,
    ahandle_callback,
    aresume,
    cancel,
    handle_callback,
    restart,
    resume,
)

__all__ = [
    "acancel",
    "ahandle_callback",
    "aresume",
    "cancel",
    "handle_callback",
    "restart",
    "resume",
]
