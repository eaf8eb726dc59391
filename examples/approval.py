"""A document that needs two sign-offs: reviewer threads, and a ``WaitFor`` on their verdicts.

What it shows:

- ``Go`` starts one thread per reviewer (legal, finance); each ``Wait``s for its reviewer's
  decision, an ``OnEvent`` with a typed input, and records it in the workflow data;
- the main thread blocks on ``WaitFor("decided", ...)``: a condition over the data, true once
  every reviewer approved or anyone rejected; its handler runs once, when it becomes true;
- an ``If`` / ``Else`` publishes or sends the document back; when the main thread ends, the
  reviewer threads still waiting end too;
- persistence between requests: each request is a fresh process in spirit -- it loads the JSON
  saved by the previous one, delivers one event, resumes, and saves again.

Run it with

    python examples/approval.py [FOLDER]

(the JSON files go to FOLDER, default a fresh temporary folder). Two documents go through: one
approved by both reviewers; one rejected by finance, which ends it at once (legal's late
verdict is then refused).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel

import stmtflow as sf

REVIEWERS = ("legal", "finance")


class Verdict(BaseModel):
    """What a reviewer submits."""

    approve: bool
    comment: str = ""


class Approval(sf.WorkflowState):
    title: str
    verdicts: dict[str, bool] = {}
    outcome: str = ""
    history: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("submit", self.submit),
            *(self.reviewer(name) for name in REVIEWERS),
            sf.WaitFor("decided", self.decided, self.conclude),
            sf.If(self.outcome == "approved", sf.Step("publish", self.publish)).Else(
                sf.Step("send_back", self.send_back)
            ),
        )

    def reviewer(self, name: str) -> sf.Go:
        """A thread waiting for one reviewer's verdict."""

        def on_verdict(verdict: Verdict) -> str:
            self.verdicts[name] = verdict.approve
            word = "approved" if verdict.approve else "rejected"
            self.history.append(
                f"{name} {word}" + (f": {verdict.comment}" if verdict.comment else "")
            )
            return f"{name}'s verdict recorded"

        return sf.Go(
            f"{name}_review",
            sf.S(sf.Wait(f"{name}_wait", sf.OnEvent(f"{name}_verdict", on_verdict))),
        )

    def decided(self) -> bool:
        everyone = all(name in self.verdicts for name in REVIEWERS)
        return everyone or False in self.verdicts.values()

    def conclude(self) -> None:
        self.outcome = "approved" if all(self.verdicts.get(n) for n in REVIEWERS) else "rejected"

    def submit(self) -> None:
        self.history.append(f"submitted {self.title!r} to {', '.join(REVIEWERS)}")

    def publish(self) -> None:
        self.history.append(f"published {self.title!r}")

    def send_back(self) -> None:
        self.history.append(f"sent {self.title!r} back to its author")


class Folder:
    """Each workflow as two JSON files: its data and its execution state."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, wf: Approval, state: sf.State) -> None:
        (self.path / f"{state.id}.data.json").write_text(wf.model_dump_json(indent=2))
        (self.path / f"{state.id}.state.json").write_text(state.model_dump_json(indent=2))

    def load(self, doc_id: str) -> tuple[Approval, sf.State]:
        wf = Approval.model_validate_json((self.path / f"{doc_id}.data.json").read_text())
        return wf, sf.load_state((self.path / f"{doc_id}.state.json").read_text())

    def start(self, doc_id: str, title: str) -> None:
        wf, state = Approval(title=title), sf.new_state(doc_id, Approval)
        sf.resume(wf, state, lambda kind: self.save(wf, state))
        self.save(wf, state)
        self.show(doc_id)

    def send(self, doc_id: str, event: str, verdict: dict[str, object]) -> None:
        wf, state = self.load(doc_id)
        try:
            answer = sf.handle_callback(event, wf, state, verdict)
        except sf.CallbackError as refused:  # nothing changed: nothing to save
            print(f"  {doc_id}: {event} refused: {type(refused).__name__}: {refused}")
            return
        self.save(wf, state)
        sf.resume(wf, state, lambda kind: self.save(wf, state))
        self.save(wf, state)
        print(f"  {doc_id}: {event} -> {answer!r}")
        self.show(doc_id)

    def show(self, doc_id: str) -> None:
        _, state = self.load(doc_id)
        where = ", ".join(f"{t.id} at {t.cur_step!r}" for t in state.threads)
        print(f"  {doc_id}: {state.status.value}" + (f" -- {where}" if where else ""))


def main(folder: Path) -> None:
    store = Folder(folder)
    print(f"JSON files in {folder}\n")

    print("doc-1: both reviewers approve")
    store.start("doc-1", "Travel policy 2024")
    store.send("doc-1", "legal_verdict", {"approve": True})
    store.send("doc-1", "finance_verdict", {"approve": True, "comment": "budget ok"})

    print("\ndoc-2: finance rejects before legal has looked: no need to wait for legal")
    store.start("doc-2", "Company car for everyone")
    store.send("doc-2", "finance_verdict", {"approve": False, "comment": "too expensive"})
    store.send("doc-2", "legal_verdict", {"approve": True})

    print("\nWhat happened:")
    for doc_id in ("doc-1", "doc-2"):
        wf, state = store.load(doc_id)
        print(f"  {doc_id} ({state.status.value}, {wf.outcome}):")
        for line in wf.history:
            print(f"    - {line}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="approval-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target)
