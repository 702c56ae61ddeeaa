"""A browser on an authenticated server: the login form, the cookie, the UI behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from metastore.server import background_server, create_token

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update"],
        )
        yield b
        b.close()


def test_sign_in_browse_and_sign_out(browser, demo_store):
    pytest.importorskip("metastore.server.ui")
    token = create_token(demo_store, "ana", read_only=True)
    with background_server(demo_store, ui=True) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{url}/experiments/diabetes")
        assert page.url == f"{url}/login?next=%2Fexperiments%2Fdiabetes"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "server-login.png"))

        page.fill("#token", "mst_wrong")
        page.click("button[type=submit]")
        assert "not valid" in page.text_content("body")

        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/experiments/diabetes")
        assert "diabetes" in page.text_content("body")
        cookie = next(c for c in page.context.cookies() if c["name"] == "metastore_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        # the page's own scripts may call the API with the cookie alone
        status = page.evaluate("async () => (await fetch('/api/runs?experiment=diabetes')).status")
        assert status == 200
        written = page.evaluate(
            """async () => (await fetch('/api/experiments', {method: 'POST',
                 headers: {'content-type': 'application/json'},
                 body: JSON.stringify({name: 'from-browser'})})).status"""
        )
        assert written == 403  # a read-only token stays read-only in the browser

        page.click("text=Sign out")
        page.wait_for_url(f"{url}/login")
        page.goto(f"{url}/experiments/diabetes")
        assert "/login" in page.url
        page.close()
    assert "from-browser" not in [e.name for e in demo_store.experiments()]
