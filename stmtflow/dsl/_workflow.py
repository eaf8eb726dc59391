"""`WorkflowState`: the base class of every workflow.

Example:
    >>> import stmtflow as sf
    >>> class Greet(sf.WorkflowState):
    ...     said: list[str] = []
    ...     def definition(self) -> sf.Section:
    ...         return sf.S(sf.Step("hello", lambda: self.said.append("hello")))
    >>> wf = Greet()
    >>> sf.resume(wf, sf.new_state("g-1", Greet)).status.value, wf.said
    ('finished', ['hello'])
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Section

__all__ = ["WorkflowState"]


class WorkflowState(BaseModel):
    """A workflow: pydantic fields are its durable data, ``definition()`` its statement tree.

    ``definition()`` may be called many times and must do no work besides building statements.
    Set ``static_definition = True`` when the tree's shape never depends on the data (every
    condition and ``Go`` id lazy): the interpreter then builds it once per ``resume``.
    """

    static_definition: ClassVar[bool] = False
    retention: ClassVar[timedelta | None] = None
    """How long an ended instance of this class is kept before `Engine.prune` (and the
    worker) deletes it with its history; None: the engine's ``retention`` (None: kept)."""

    def definition(self) -> Section:
        """The statement tree; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement definition()")
