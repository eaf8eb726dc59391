"""Snapshot assertions: compare a value with a reviewed file, show a diff when they differ.

A value is written the way reviewers read it: pydantic models, dataclasses, dicts and lists as
pretty JSON with sorted keys (``.json``), text as it is (``.txt``). Files live beside the tests,
one folder per test module: ``tests/snapshots/<test_module>/<name>.json``.

A missing or different file fails the assertion with what to do; run pytest with
``--snapshot-update`` (the option the stmtflow pytest plugin adds) to write every snapshot a run
compares, then review the files in the diff and commit them. Outside pytest, setting the
environment variable ``STMTFLOW_UPDATE_SNAPSHOTS=1`` does the same.

Example:
    >>> print(snapshot_text({"b": 1, "a": [True, None]}), end="")
    {
      "a": [
        true,
        null
      ],
      "b": 1
    }
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python

from stmtflow.errors import SnapshotMismatch, SnapshotMissing

__all__ = [
    "UPDATE_ENV",
    "Snapshot",
    "SnapshotMismatch",
    "SnapshotMissing",
    "assert_snapshot",
    "snapshot_text",
]

UPDATE_ENV = "STMTFLOW_UPDATE_SNAPSHOTS"
"""Environment variable that, set to ``1``, makes snapshot assertions write instead of compare."""

_update_default: list[bool] = []
"""Set by the pytest plugin for the duration of a run (a stack: pytester runs nest)."""

_SAFE = re.compile(r"[^\w.\-]+")


def snapshot_text(value: Any) -> str:
    """The text a value is stored as: ``str`` as it is, anything else as sorted, indented JSON.

    Pydantic models, dataclasses, enums and datetimes are converted the way pydantic dumps them
    in JSON mode. The text always ends with a newline.
    """
    if isinstance(value, str):
        text = value
    else:
        data = to_jsonable_python(value, by_alias=True)
        text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    return text if text.endswith("\n") else text + "\n"


def _updating(update: bool | None) -> bool:
    if update is not None:
        return update
    if os.environ.get(UPDATE_ENV, "") not in ("", "0"):
        return True
    return bool(_update_default and _update_default[-1])


def _file_name(name: str, value: Any) -> str:
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"a snapshot name must be a relative name without '..', got {name!r}")
    if Path(name).suffix:
        return name
    return f"{name}.txt" if isinstance(value, str) else f"{name}.json"


@dataclass
class Snapshot:
    """Snapshot files of one test module, in ``directory``.

    The ``snapshot`` pytest fixture is one of these, bound to the running test: call it with a
    value and a name (default: the test's name, numbered from the second call on).

    Args:
        directory: where the files live, e.g. ``tests/snapshots/test_orders``.
        update: write files instead of comparing; None means: as the pytest option
            ``--snapshot-update`` or the ``STMTFLOW_UPDATE_SNAPSHOTS`` variable say.
        default_name: the name used when a call gives none.

    Example:
        >>> import tempfile
        >>> snap = Snapshot(Path(tempfile.mkdtemp()), update=True)
        >>> snap({"status": "finished"}, "final").name
        'final.json'
        >>> snap.update = False
        >>> snap({"status": "finished"}, "final").name
        'final.json'
    """

    directory: Path
    update: bool | None = None
    default_name: str | None = None
    written: list[Path] = field(default_factory=list)
    """Files this object wrote (in update mode), for a summary."""
    _calls: int = field(default=0, repr=False)

    def path(self, name: str, value: Any = None) -> Path:
        """The file a snapshot called ``name`` of ``value`` lives in."""
        return self.directory / _file_name(name, value)

    def __call__(self, value: Any, name: str | None = None) -> Path:
        """Compare ``value`` with snapshot ``name`` (or write it when updating); returns its path.

        Raises:
            SnapshotMissing: no file yet (and not updating).
            SnapshotMismatch: the file differs; the message holds a unified diff.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        self._calls += 1
        if name is None:
            if self.default_name is None:
                raise ValueError("give the snapshot a name: snapshot(value, 'name')")
            base = _SAFE.sub("_", self.default_name).strip("_") or "snapshot"
            name = base if self._calls == 1 else f"{base}_{self._calls}"
        path = self.path(name, value)
        actual = snapshot_text(value)
        exists = path.is_file()
        expected = path.read_text(encoding="utf-8") if exists else None
        if _updating(self.update):
            if expected != actual:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(actual, encoding="utf-8")
                self.written.append(path)
            return path
        if expected is None:
            raise SnapshotMissing(
                f"snapshot {name!r} does not exist yet: {path}\n"
                "Run pytest with --snapshot-update to create it, then review and commit the file."
            )
        if expected != actual:
            diff = difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{path} (snapshot)",
                tofile="actual",
            )
            raise SnapshotMismatch(
                f"snapshot {name!r} differs from {path}:\n{''.join(diff)}"
                "Run pytest with --snapshot-update to accept the new value."
            )
        return path


def assert_snapshot(
    value: Any, name: str, *, directory: str | Path | None = None, update: bool | None = None
) -> Path:
    """Compare ``value`` with the snapshot file ``name``; a plain-function form of the fixture.

    ``directory`` defaults to ``snapshots/<module>/`` beside the calling test module, the same
    place the ``snapshot`` fixture uses. Returns the file's path.

    Example:
        >>> import tempfile
        >>> assert_snapshot({"a": 1}, "a", directory=tempfile.mkdtemp(), update=True).name
        'a.json'
    """
    __tracebackhide__ = True
    if directory is None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is None:  # pragma: no cover - only without frame support
            raise ValueError("cannot tell the calling module; pass directory=")
        module = Path(caller.f_code.co_filename)
        directory = module.parent / "snapshots" / module.stem
    return Snapshot(Path(directory), update=update)(value, name)
