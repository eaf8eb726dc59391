"""What every ``stmtflow`` command shares: errors as one line, the store, JSON in and out.

Every failure a user can cause ends the command with one line on stderr, ``error: ...``, and
exit code 1 (2 for a malformed command line), never a traceback. Set ``STMTFLOW_DEBUG=1`` to
get the traceback of an unexpected error.

Example:
    >>> one_line("invalid input:\\n  - amount: required\\n  - note: not a string")
    'invalid input: amount: required; note: not a string'
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
from pydantic_core import to_jsonable_python
from rich.console import Console

from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import CliError, StmtflowError
from stmtflow.runtime import Engine
from stmtflow.runtime._loader import TargetError, load_target
from stmtflow.runtime._sinks import sink_from_url
from stmtflow.stores import DEFAULT_URL, Record, Store, open_store
from stmtflow.stores.base import redact

__all__ = [
    "CliError",
    "Config",
    "ErrorsAsOneLine",
    "console",
    "dump_json",
    "fail",
    "one_line",
    "parse_json",
    "pass_config",
    "remembered_class",
    "when",
]

_USER_ERRORS = (StmtflowError, ValueError, LookupError, OSError, sqlite3.Error, ImportError)


def one_line(message: str) -> str:
    """``message`` on one line: later lines (bullets dropped) follow the first, ``;``-separated."""
    lines = [" ".join(line.split()).removeprefix("- ") for line in message.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0]} {'; '.join(lines[1:])}"


def fail(message: str) -> NoReturn:
    """Stop the command with ``error: message``."""
    raise CliError(message)


class ErrorsAsOneLine(click.Group):
    """A click group whose every failure is one ``error: ...`` line on stderr."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; exit with 0 on success, else print one error line and exit."""
        code = 0
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            if isinstance(result, int):
                code = result
        except click.exceptions.Abort:
            click.echo("error: interrupted", err=True)
            code = 130
        except click.ClickException as exc:
            click.echo(f"error: {one_line(exc.format_message())}", err=True)
            code = exc.exit_code
        except _USER_ERRORS as exc:
            click.echo(f"error: {one_line(str(exc)) or type(exc).__name__}", err=True)
            code = 1
        except Exception as exc:
            if os.environ.get("STMTFLOW_DEBUG"):
                raise
            message = one_line(f"unexpected {type(exc).__name__}: {exc}")
            click.echo(f"error: {message} (STMTFLOW_DEBUG=1 shows the traceback)", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


@dataclass(slots=True)
class Config:
    """The options of the ``stmtflow`` group, handed to every command."""

    db: str = DEFAULT_URL
    """The store URL (``--db`` or ``$STMTFLOW_DB``)."""
    db_given: bool = False
    """True when the URL was given explicitly (option or environment)."""
    sinks: tuple[str, ...] = ()
    """Where the engine delivers what steps emit (``--sink URL``, `sink_from_url`)."""

    def _sqlite_file(self) -> Path | None:
        parts = urlsplit(self.db)
        if parts.scheme.lower() != "sqlite" or parts.path in ("", "/", "/:memory:"):
            return None
        return Path(parts.path[1:])

    def store(self, *, create: bool = False) -> Store:
        """Open the store; without ``create``, a missing SQLite file is an error, not made."""
        path = self._sqlite_file()
        if path is not None and not create and not path.exists():
            fail(
                f"no database at {path} (nothing has run against it yet; "
                "pass --db URL or set STMTFLOW_DB)"
            )
        try:
            return open_store(self.db)
        except sqlite3.Error as exc:
            fail(f"cannot open database {redact(self.db)}: {exc}")

    def engine(self, *, create: bool = False) -> Engine:
        """An `Engine` over the store, with no workflow class registered yet: a type it meets
        (a child, a parent woken by one) is imported from its remembered target."""
        sinks = [sink_from_url(url) for url in self.sinks]
        engine = Engine(self.store(create=create), sinks=sinks)
        engine.resolve = lambda name: _remembered(engine, name)
        return engine


def _remembered(engine: Engine, name: str) -> type[WorkflowState] | None:
    target = engine.store.get_target(name)
    if target is None:
        return None
    try:
        cls = load_target(target)
    except TargetError:
        return None
    return cls if Engine.type_name(cls) == name else None


def remember_children(
    engine: Engine, cls: type[WorkflowState], wf: WorkflowState, target: str
) -> None:
    """Remember the targets of the child classes ``wf``'s definition names that live in the
    module of ``cls`` (``target`` is ``cls``'s), so later commands can load them."""
    from stmtflow.analysis import walk
    from stmtflow.dsl._child import Call, Child, Start
    from stmtflow.dsl._wait import On

    where = target.rsplit(":", 1)[0]
    for stmt in walk(wf.definition()):
        if isinstance(stmt, Call | Start):
            child: object = stmt.workflow
        elif isinstance(stmt, On) and isinstance(stmt.handler, Child):
            child = stmt.handler.workflow
        else:
            continue
        if isinstance(child, type) and child.__module__ == cls.__module__:
            engine.register(child, target=f"{where}:{child.__qualname__}")


def remembered_class(engine: Engine, record: Record) -> type[WorkflowState]:
    """Import and register the class of a stored instance, from its remembered target."""
    target = engine.store.get_target(record.workflow)
    if target is None:
        fail(
            f"instance {record.id!r} is a {record.workflow} workflow, but the store remembers no "
            f"target for {record.workflow} (run `stmtflow run FILE.py:{record.workflow}` or "
            f"`stmtflow worker FILE.py:{record.workflow}` once)"
        )
    try:
        cls = load_target(target)
    except TargetError as exc:
        fail(f"cannot load workflow {record.workflow} from its remembered target: {exc}")
    if Engine.type_name(cls) != record.workflow:
        fail(f"remembered target {target!r} defines {Engine.type_name(cls)}, not {record.workflow}")
    engine.register(cls)
    return cls


def parse_json(text: str, what: str) -> Any:
    """Parse JSON given on the command line; ``@path`` reads it from a file."""
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text()
        except OSError as exc:
            fail(f"cannot read {what} from {text[1:]}: {exc.strerror or exc}")
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc}")


def dump_json(value: Any) -> str:
    """``value`` as indented JSON (pydantic models, datetimes and enums included)."""
    return json.dumps(to_jsonable_python(value), indent=2)


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """A time for humans: ISO 8601 in UTC to the second, and how far away it is."""
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    seconds = int((moment - now).total_seconds())
    span = abs(seconds)
    if span < 60:
        ago = f"{span}s"
    elif span < 3600:
        ago = f"{span // 60}m {span % 60}s"
    elif span < 86400:
        ago = f"{span // 3600}h {span % 3600 // 60}m"
    else:
        ago = f"{span // 86400}d {span % 86400 // 3600}h"
    relative = f"in {ago}" if seconds > 0 else f"{ago} ago"
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({relative})"


def console() -> Console:
    """A rich console on stdout (wide enough for tables when output is not a terminal)."""
    out = Console(soft_wrap=False)
    if not out.is_terminal:
        out = Console(width=max(out.width, 120), soft_wrap=False)
    return out


pass_config = click.make_pass_decorator(Config)
"""Hands a command the group's `Config`."""

STATUS_STYLE = {
    "resuming": "cyan",
    "waiting": "yellow",
    "finished": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "compensating": "magenta",
}
"""How each workflow status is coloured."""
