"""Importing workflow classes named by a TARGET: ``path/to/file.py:Class`` or ``module:Class``.

The command line takes workflows this way (``stmtflow run examples/quickstart.py:Expense``), and
the store remembers each workflow type's target so later commands need none. A file target is
remembered with its absolute path, so it still resolves from another directory; a module target
is imported as given (with the current directory on ``sys.path``, like ``python -m``).

Example:
    >>> parse_target("examples/quickstart.py:Expense")
    ('examples/quickstart.py', 'Expense')
    >>> load_target("stmtflow.dsl._workflow:Nope")
    Traceback (most recent call last):
    ...
    stmtflow.errors.TargetError: module 'stmtflow.dsl._workflow' has no class 'Nope'
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import TargetError

__all__ = ["TargetError", "is_file_target", "load_target", "normalize_target", "parse_target"]


def parse_target(target: str) -> tuple[str, str]:
    """Split a TARGET into its module part (a file path or a dotted module) and class path.

    Raises:
        TargetError: no ``:`` or an empty side.
    """
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise TargetError(
            f"invalid target {target!r}: expected path/to/file.py:Class or package.module:Class"
        )
    return where, name


def is_file_target(where: str) -> bool:
    """True when the module part of a target is a file path rather than a dotted module name."""
    return where.endswith(".py") or "/" in where or os.sep in where


def normalize_target(target: str) -> str:
    """The target as it should be remembered: a file path made absolute, a module as given."""
    where, name = parse_target(target)
    if is_file_target(where):
        return f"{Path(where).expanduser().resolve()}:{name}"
    return target


def _import_file(where: str) -> ModuleType:
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise TargetError(f"workflow file not found: {where}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"_stmtflow_target_{path.stem}_{digest}"
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {where}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, so pydantic can resolve the module's annotations; the file's
    # folder goes on sys.path so the file can import its neighbours.
    sys.modules[module_name] = module
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise TargetError(f"cannot import {where}: {type(exc).__name__}: {exc}") from exc
    return module


def _import_module(where: str) -> ModuleType:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (where == exc.name or where.startswith(exc.name + ".")):
            raise TargetError(f"module not found: {where}") from exc
        raise TargetError(f"cannot import {where}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise TargetError(f"cannot import {where}: {type(exc).__name__}: {exc}") from exc


def load_target(target: str) -> type[WorkflowState]:
    """Import the workflow class a TARGET names.

    ``Class`` may be dotted (``Outer.Inner``) for a nested class.

    Raises:
        TargetError: the target is malformed, the file or module cannot be found or imported,
            the class does not exist, or it is not a `WorkflowState` subclass.
    """
    where, name = parse_target(target)
    module = _import_file(where) if is_file_target(where) else _import_module(where)
    obj: object = module
    for part in name.split("."):
        if not hasattr(obj, part):
            owner = "file" if is_file_target(where) else "module"
            raise TargetError(f"{owner} {where!r} has no class {name!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, WorkflowState)):
        got = f"class {obj.__name__}" if isinstance(obj, type) else type(obj).__name__
        raise TargetError(f"{target!r} is not a WorkflowState subclass (it is a {got})")
    if obj is WorkflowState:
        raise TargetError(f"{target!r} is the WorkflowState base class, not a workflow")
    return obj
