"""YAML DAGs: a pipeline file becomes a workflow class that runs through the `Engine`.

```yaml
name: Nightly
steps:
  - id: extract
    handler: extract
    retry: {max_attempts: 3, backoff: exponential, initial_interval: 2s}
    timeout: 30s
  - id: load
    handler: load
    depends_on: [extract]
    fallback: load_cached      # runs when load's attempts ran out; its output is load's
    compensate: unload         # undone, latest completion first, when the run fails
```

`load` checks the file against its JSON Schema (`schema`, also docs/dag.schema.json) and the
steps against each other and ``handlers``, and raises one `DefinitionError` listing every
problem. Handlers are called ``handler(inputs)`` with ``inputs`` a dict: ``"input"`` → the
run's input, and each dependency's id → its output; what they return (JSON-ready) is kept in
the instance's ``outputs``. See docs/dag.md.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow import dag
    >>> Hello = dag.load("steps: [{id: hi, handler: hi}]",
    ...                  handlers={"hi": lambda inputs: f"hi {inputs['input']['who']}"})
    >>> wf = Hello(input={"who": "ada"})
    >>> sf.resume(wf, sf.new_state("h-1", Hello)).status.value, wf.outputs
    ('finished', {'hi': 'hi ada'})
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from stmtflow.analysis import validate
from stmtflow.dag._spec import DagSpec, Handlers, StepSpec, parse, schema
from stmtflow.dag._workflow import DagFailed, DagWorkflow

__all__ = ["DagFailed", "DagSpec", "DagWorkflow", "Handlers", "StepSpec", "load", "schema"]


def load(source: str | Path, *, handlers: Handlers) -> type[DagWorkflow]:
    """Turn a DAG file (its YAML text, or a path to it) into a workflow class.

    Args:
        source: the YAML text, or a `Path` (or a one-line string ending in ``.yaml``,
            ``.yml`` or ``.json``) of the file.
        handlers: the callables the file names, as a mapping or a module (attributes).

    Returns:
        A `DagWorkflow` subclass named after the file's ``name`` (default ``Dag``); register it
        with the `Engine` like any workflow class.

    Raises:
        DefinitionError: listing every problem: schema violations, duplicate ids, unknown
            ``depends_on`` ids and handler names, cycles (named by their steps).
    """
    spec = parse(source, handlers=handlers)
    cls = cast(
        "type[DagWorkflow]", type(spec.name, (DagWorkflow,), {"dag": spec, "__module__": __name__})
    )
    validate(cls().definition())
    return cls
