"""``stmtflow serve``: the HTTP service and web page (`stmtflow.http.create_app`) on uvicorn.

Serves the workflow types given as TARGETs (and remembers them), or, bare, every type the
store remembers and can import, exactly as ``stmtflow worker`` chooses them. A worker runs
beside the server unless ``--no-worker`` (timers and retries need one somewhere). Without
``--token`` (or ``$STMTFLOW_TOKENS``, comma-separated) the service lets every request in:
bind it to loopback, or put it behind a proxy that checks.

Example:
    >>> from click.testing import CliRunner
    >>> from stmtflow.cli import cli
    >>> args = ["--db", "memory://", "serve", "stmtflow.dsl._workflow:Nope"]
    >>> print(CliRunner().invoke(cli, args).stderr, end="")
    error: module 'stmtflow.dsl._workflow' has no class 'Nope'
"""

from __future__ import annotations

import threading

import click

from stmtflow.cli._common import Config, fail, pass_config
from stmtflow.cli._worker import _serve as choose_types

__all__ = ["serve"]


@click.command(short_help="Serve the HTTP API and web page.")
@click.argument("targets", nargs=-1, metavar="[TARGET ...]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    "tokens",
    multiple=True,
    envvar="STMTFLOW_TOKENS",
    metavar="TOKEN",
    help="A bearer token that may pass (repeatable; env STMTFLOW_TOKENS, comma-separated).",
)
@click.option(
    "--callback-secret",
    envvar="STMTFLOW_CALLBACK_SECRET",
    metavar="SECRET",
    help="Key of signed callback URLs (env STMTFLOW_CALLBACK_SECRET); off without it.",
)
@click.option("--worker/--no-worker", default=True, show_default=True, help="Run a worker too.")
@click.option(
    "--server-log-level",
    "log_level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level (requests, start-up); --log-level before serve is stmtflow's.",
)
@pass_config
def serve(
    cfg: Config,
    targets: tuple[str, ...],
    host: str,
    port: int,
    tokens: tuple[str, ...],
    callback_secret: str | None,
    worker: bool,
    log_level: str,
) -> None:
    """Serve the JSON API, /openapi.json, /metrics and the web page under /ui."""
    try:
        import uvicorn

        from stmtflow.http import create_app
    except ImportError as exc:
        fail(f"stmtflow serve needs the http extra: pip install 'stmtflow[http]' ({exc})")
    allowed = {t.strip() for token in tokens for t in token.split(",") if t.strip()}
    with cfg.engine(create=bool(targets)) as engine:
        types = choose_types(engine, targets)
        app = create_app(engine, auth=allowed or None, callback_secret=callback_secret)
        stop = threading.Event()
        thread = None
        if worker:
            thread = threading.Thread(
                target=engine.run_worker,
                kwargs={"stop": stop, "handle_signals": False},
                name="stmtflow-worker",
                daemon=True,
            )
            thread.start()
        click.echo(
            f"serving {', '.join(types)} on http://{host}:{port}/ui/"
            + (" (token required)" if allowed else "")
            + (" with a worker" if worker else ""),
            err=True,
        )
        try:
            uvicorn.run(app, host=host, port=port, log_level=log_level)
        finally:
            stop.set()
            if thread is not None:
                thread.join()
