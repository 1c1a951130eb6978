"""The HTML report in headless Chromium: no console errors, no page errors, every chart loaded, no
request leaves the page, and a hostile nickname is shown as text, never run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.report import analyze_actions, analyze_session
from bot.report.html import render_compare_html, render_html, write_html

from test_report import DEMO, DEMO_ACTIONS, XSS, hand_actions, hand_session

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed at /usr/bin/chromium "
                                       "(apt-get install -y chromium; CI installs it)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def load(browser, path: Path) -> dict:
    """Open the file; return what went wrong and what the page shows."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    images = page.evaluate("""() => [...document.images].map(i => ({src: i.src.slice(0, 22), complete: i.complete,
                                                                   width: i.naturalWidth, height: i.naturalHeight}))""")
    text = page.inner_text("body")
    injected = page.evaluate("() => document.querySelectorAll('img[onerror], script').length")
    page.close()
    return {"problems": problems, "requests": requests, "dialogs": dialogs, "images": images, "text": text,
            "injected": injected}


def test_single_report_renders_cleanly(browser, tmp_path):
    session = hand_session(tmp_path / "s.jsonl")
    stats = analyze_session(session)
    html = render_html(stats, analyze_actions(hand_actions(tmp_path / "a.jsonl"), stats))
    got = load(browser, write_html(tmp_path / "report.html", html))
    assert got["problems"] == []
    assert got["dialogs"] == []  # alert(1) never ran
    assert got["injected"] == 0
    assert [u for u in got["requests"] if not u.startswith(("file:", "data:"))] == []
    assert len(got["images"]) == 4
    assert all(i["src"] == "data:image/png;base64," and i["complete"] and i["width"] > 0 and i["height"] > 0
               for i in got["images"]), got["images"]
    assert XSS in got["text"]  # shown as typed
    assert "1,116" in got["text"] and "US$5.58" in got["text"]


def test_demo_report_with_actions_and_a_comparison(browser, tmp_path):
    demo = analyze_session(DEMO)
    html = render_html(demo, analyze_actions(DEMO_ACTIONS, demo))
    got = load(browser, write_html(tmp_path / "demo.html", html))
    assert got["problems"] == [] and got["dialogs"] == [] and got["injected"] == 0
    assert len(got["images"]) == 4 and all(i["width"] > 0 for i in got["images"])
    assert "follow-reminder" in got["text"] and "{{7*7}}" in got["text"]

    other = analyze_session(hand_session(tmp_path / "s.jsonl"))
    got = load(browser, write_html(tmp_path / "compare.html", render_compare_html(demo, other)))
    assert got["problems"] == [] and got["dialogs"] == [] and got["injected"] == 0
    assert len(got["images"]) == 3 and all(i["width"] > 0 for i in got["images"])
    assert XSS in got["text"]
