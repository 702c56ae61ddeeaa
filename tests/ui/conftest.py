"""Fixtures for the web UI: the demo store served on a free loopback port, and a real
headless Chromium (Debian's, driven by Playwright) to look at it."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """An app served by uvicorn in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            threading.Event().wait(0.05)
        raise RuntimeError("the UI server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def ui_app(store):
    from metastore.server.local import build_app

    return build_app(store)


@pytest.fixture(scope="module")
def demo_ui_store(demo_store_path, tmp_path_factory):
    """A private copy of the demo's runs, shared by a module's read-only UI tests."""
    import metastore

    folder = tmp_path_factory.mktemp("ui") / ".metastore"
    shutil.copytree(demo_store_path, folder)
    s = metastore.open(f"sqlite:///{folder / 'metastore.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def live_ui(demo_ui_store):
    with LiveServer(ui_app(demo_ui_store)) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    # Without a browser the tests skip, except under CI=true, where .ci/run installs
    # both and a skip would hide a broken UI.
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not Path(CHROMIUM).exists():
        (pytest.fail if in_ci else pytest.skip)(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        (pytest.fail if in_ci else pytest.skip)(f"playwright is not installed: {e}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def screenshot(page, name: str) -> Path:
    """Save the whole page for the test output (and docs/ui.md, copied by hand)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def shot():
    return screenshot
