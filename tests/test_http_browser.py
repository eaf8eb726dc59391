"""The web page in a real browser: Playwright driving Debian's Chromium against the example
service (examples/service/app.py) started on a free port.

Opens the instance list, follows an instance, fills the decision form built from its JSON
Schema, submits it and sees the instance move on; takes the screenshots docs/http.md shows
(into docs/images/ with ``STMTFLOW_SCREENSHOTS=1``, else into the test's temporary folder, so
a run leaves the tracked images alone).
Skipped (with the reason) only when Chromium is absent and CI is unset.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS_IMAGES = ROOT / "docs" / "images"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_service(folder: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """The example service on a free port, once its /healthz answers."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "service" / "app.py"), "--port", str(port), *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the service did not answer /healthz within 30 s")


def stop_service(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    proc, base = start_service(tmp_path)
    yield base
    stop_service(proc)


def test_a_person_decides_an_expense_in_the_browser(service: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is required under CI (apt-get install chromium)")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    images = DOCS_IMAGES if os.environ.get("STMTFLOW_SCREENSHOTS") else tmp_path / "images"
    images.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{service}/ui/")
        rows = page.locator("#instances tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator("#instances")).to_contain_text("waiting")
        page.screenshot(path=str(images / "ui-list.png"), full_page=True)

        page.get_by_role("link", name="expense-2").click()
        expect(page.locator("h1")).to_contain_text("expense-2")
        expect(page.locator("#status")).to_have_text("waiting")
        form = page.locator("form.event[data-event='decide']")
        expect(form).to_contain_text("approve bob's expense of 980.00?")
        diagram = page.locator(".diagram img")
        expect(diagram).to_be_visible()
        assert page.evaluate("document.querySelector('.diagram img').naturalWidth") > 0
        page.screenshot(path=str(images / "ui-instance.png"), full_page=True)

        # A one-letter manager is refused by the schema (the page says so; nothing moves).
        form.locator("input[name=approve]").check()
        form.locator("select[name=category]").select_option("travel")
        form.locator("input[name=manager]").fill("x")
        form.get_by_role("button", name="Send decide").click()
        expect(page.locator("#problem")).to_be_visible()
        expect(page.locator("#status")).to_have_text("waiting")

        form = page.locator("form.event[data-event='decide']")
        form.locator("input[name=approve]").check()
        form.locator("select[name=category]").select_option("travel")
        form.locator("input[name=manager]").fill("maria")
        form.locator("input[name=note]").fill("conference trip")
        form.get_by_role("button", name="Send decide").click()
        expect(page.locator("#notice")).to_have_text("sent decide")
        expect(page.locator("#data")).to_contain_text("maria approved it (travel)")
        expect(page.locator("form.event[data-event='paid']")).to_be_visible()
        page.screenshot(path=str(images / "ui-after-decision.png"), full_page=True)

        page.locator("form.event[data-event='paid'] input[name=value]").fill("PAY-77")
        page.get_by_role("button", name="Send paid").click()
        expect(page.locator("#status")).to_have_text("finished")

        page.goto(f"{service}/ui/?status=finished")
        expect(page.locator("#instances tbody tr")).to_have_count(1)
        expect(page.locator("#instances")).to_contain_text("expense-2")
        browser.close()
    answer = httpx.get(f"{service}/instances/expense-2").json()
    assert answer["data"]["log"][-1] == "paid, reference PAY-77"
    for name in ("ui-list.png", "ui-instance.png", "ui-after-decision.png"):
        assert (images / name).read_bytes().startswith(b"\x89PNG")
