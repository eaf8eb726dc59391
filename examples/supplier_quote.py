"""The first of two suppliers to quote wins: threads with arguments in a group, and
``Join(until="any")``.

What it shows:

- one ``Go`` in a loop starts a thread per supplier, each with its own ``arg`` (the supplier)
  and in the group ``"suppliers"``; its body is built from that arg, so every rebuild of the
  definition gives each thread its own supplier back;
- each supplier thread asks its supplier through a portal handler (its ``setup`` sends the
  request, its ``teardown`` withdraws it) and waits for the ``quote`` event or a day's timeout;
  both threads wait on an event of the same name, told apart by ``thread_id``;
- ``Join("first_quote", "suppliers", until="any")`` goes on as soon as one supplier thread ended;
  the other is ended at once (``cancel_rest`` is the default): its request is withdrawn and its
  timer cancelled;
- the engine over SQLite; a late quote from the loser is refused (the request has finished).

Run it with

    python examples/supplier_quote.py [FOLDER]

(the SQLite file goes to FOLDER, default a fresh temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import stmtflow as sf

SUPPLIERS = ["acme", "globex"]


class Portal(sf.BaseHandler):
    """A supplier portal: setup sends the request for a quote, teardown withdraws it."""

    def setup(self, req: sf.CallbackRequest) -> str:
        print(f"asked {req.thread_id} for a quote")
        return f"{req.workflow_id}/{req.thread_id}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        if not handled:
            print(f"withdrew request {req.setup_data} from {req.thread_id}")


class Quote(sf.WorkflowState):
    item: str
    asked: int = 0
    quotes: dict[str, int] = {}
    winner: str = ""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "ask",
                lambda: self.asked < len(SUPPLIERS),
                sf.Go(
                    "supplier",
                    self.supplier,
                    id=lambda: SUPPLIERS[self.asked],
                    arg=lambda: {"name": SUPPLIERS[self.asked]},
                    group="suppliers",
                ),
                sf.Step("next_supplier", self.next_supplier),
            ),
            sf.Join("first_quote", "suppliers", until="any"),
            sf.Step("accept", self.accept),
        )

    def next_supplier(self) -> None:
        self.asked += 1

    def supplier(self, arg: dict[str, str]) -> sf.Section:
        """One supplier's thread, built from its arg."""
        name = arg["name"]
        return sf.S(
            sf.Wait(
                "reply",
                sf.On("quote", Portal(), sf.Step("note", lambda: self.note(name))),
                sf.On("no_reply", sf.Timer(days=1)),
            ),
        )

    def note(self, name: str) -> None:
        self.quotes[name] = len(self.quotes) + 1  # the order quotes came in

    def accept(self) -> None:
        self.winner = min(self.quotes, key=self.quotes.__getitem__)
        print(f"accepted the quote of {self.winner} for {self.item}")


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    with sf.Engine(f"sqlite:///{folder / 'quotes.db'}", workflows=[Quote]) as engine:
        inst = engine.start(Quote, {"item": "500 teapots"}, id="rfq-1")
        waiting = sorted({p.thread_id for p in engine.pending("rfq-1")})
        print(f"{inst.status.value} on: {', '.join(waiting)}")
        engine.send("rfq-1", "quote", {"price": 900}, thread_id="globex")
        inst = engine.get("rfq-1")
        print(f"status {inst.status.value}; threads left: {[t.id for t in inst.state.threads]}")
        try:
            engine.send("rfq-1", "quote", {"price": 800}, thread_id="acme")
        except sf.StmtflowError as exc:
            print(f"late quote from acme refused: {type(exc).__name__}")


if __name__ == "__main__":
    main()
