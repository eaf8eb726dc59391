"""The ``stmtflow`` command line (``python -m stmtflow.cli`` is the same program)."""

from stmtflow.cli._main import cli, main

__all__ = ["cli", "main"]
