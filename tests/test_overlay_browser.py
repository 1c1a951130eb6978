"""The overlay page in a real headless Chromium: the server on loopback, actions sent through the
sink, and what the DOM shows asserted — alerts, live poll bars, board order, escaped viewer text,
reconnection after a restart, speech. A screenshot is saved in the test's tmp dir (and in
``$LIVEBOT_SCREENSHOT_DIR`` when set; ``LIVEBOT_SCREENSHOT_DIR=docs`` refreshes the README's)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.actions.model import Action
from bot.sinks.overlay import OverlaySink

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
async_api = pytest.importorskip(
    "playwright.async_api", reason="the browser tests need playwright (pip install playwright; no browser download)")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# Record speech instead of making it: the page calls speechSynthesis.speak(utterance).
SPEECH_STUB = """
window.__spoken = [];
if (window.speechSynthesis) {
  window.speechSynthesis.speak = (u) => { window.__spoken.push(u.text); };
}
"""
XSS = '<img src=x onerror=alert(1)>'
T0 = 1_795_200_000_000


def act(kind: str, text: str = "", user: str | None = None, **data) -> Action:
    return Action(T0, kind, text, "test", user, None, data)


@pytest.fixture
async def browser():
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def overlay():
    sink = OverlaySink(port=0, tts_per_minute=5, tts_user_gap_ms=30_000)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


async def until(check, timeout: float = 5.0) -> None:
    """Wait (polling) for a server-side condition."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def open_page(browser, sink: OverlaySink, query: str = "?alert_ms=60000", connects: int = 1):
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    page.dialogs = []  # type: ignore[attr-defined]

    async def on_dialog(dialog):
        page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await page.add_init_script(SPEECH_STUB)
    await page.goto(sink.url + query)
    await page.wait_for_function(f"() => document.documentElement.dataset.connects === '{connects}'")
    await until(lambda: sink.server.clients >= 1)
    return page


async def texts(page, selector: str) -> list[str]:
    return await page.locator(selector).all_text_contents()


async def save_screenshot(page, tmp_path: Path, name: str) -> None:
    """Over a dark background (the page itself is transparent), into tmp and $LIVEBOT_SCREENSHOT_DIR."""
    await page.evaluate("document.documentElement.style.background = '#1d2130'")
    await page.wait_for_timeout(700)  # entry animations settle
    shot = await page.screenshot()
    (tmp_path / name).write_bytes(shot)
    if folder := os.environ.get("LIVEBOT_SCREENSHOT_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(shot)
    await page.evaluate("document.documentElement.style.background = ''")


async def test_alerts_poll_bars_board_and_banner_show(browser, overlay, tmp_path):
    page = await open_page(browser, overlay)
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"

    await overlay.send([
        act("alert", "Pia_739 followed! 💜", "pia"),
        act("alert", "Xavi sent 1× Corgi!", "xavi", tier="big", gift="Corgi"),
        act("say", "Thank you Xavi for the Corgi!"),  # chat lines are not for the overlay
        act("alert", "Lena sent 1× Lion!", "lena", tier="legendary", gift="Lion"),
    ])
    await page.wait_for_selector(".alert.tier-legendary")
    assert await texts(page, "#alerts .alert") == [  # newest first
        "Lena sent 1× Lion!", "Xavi sent 1× Corgi!", "Pia_739 followed! 💜"]
    sizes = await page.locator("#alerts .alert").evaluate_all(
        "alerts => alerts.map(a => parseFloat(getComputedStyle(a).fontSize))")
    assert sizes[0] > sizes[1] > sizes[2]  # bigger gifts, bigger alerts

    # A poll, then live vote counts: the bars follow.
    options = ["Minecraft", "Fortnite", "Just chatting"]
    await overlay.send([act("poll", "What should we play next?", options=options, duration_ms=90_000, ends=T0)])
    await page.wait_for_selector("#poll:not([hidden])")
    assert await texts(page, "#poll .name") == options
    await overlay.send([act("poll_update", "", question="What should we play next?",
                            votes={"Minecraft": 1, "Fortnite": 3, "Just chatting": 0}, total=4)])
    await page.wait_for_function("() => document.querySelector('#poll .option:nth-child(2)').dataset.votes === '3'")
    widths = await page.locator("#poll .fill").evaluate_all("fills => fills.map(f => f.style.width)")
    assert widths == ["25%", "75%", "0%"]
    assert await texts(page, "#poll .votes") == ["1", "3", "0"]
    assert await page.text_content("#poll .total") == "4 votes"
    assert (await page.text_content("#poll .timer")).startswith("1:")

    await overlay.send([act("leaderboard", "", top=[
        {"rank": 1, "unique_id": "lena", "nickname": "Lena", "diamonds": 29_999},
        {"rank": 2, "unique_id": "xavi", "nickname": "Xavi", "diamonds": 1_200},
        {"rank": 3, "unique_id": "ana", "nickname": "Ana", "diamonds": 410},
    ])])
    await page.wait_for_selector("#board:not([hidden])")
    assert await texts(page, "#board .name") == ["Lena", "Xavi", "Ana"]
    assert await texts(page, "#board .diamonds") == ["29,999", "1,200", "410"]

    await overlay.send([act("cta", "Enjoying the stream? Tap follow! 💜"),
                        act("shoutout", "Ana just passed 500 diamonds tonight! 🏆", "ana")])
    await page.wait_for_selector("#banner:not([hidden])")
    assert await page.text_content("#banner .text") == "Enjoying the stream? Tap follow! 💜"
    await page.wait_for_selector(".alert.kind-shoutout")
    await overlay.send([act("poll_update", "", question="What should we play next?",
                            votes={"Minecraft": 2, "Fortnite": 5, "Just chatting": 1}, total=8)])
    await page.wait_for_function("() => document.querySelector('#poll .total').textContent === '8 votes'")
    await save_screenshot(page, tmp_path, "overlay.png")

    await overlay.send([act("poll_result", "The chat has spoken: Fortnite (5 of 8 votes)!",
                            question="What should we play next?", votes={"Minecraft": 2, "Fortnite": 5,
                                                                         "Just chatting": 1},
                            total=8, winner="Fortnite", winners=["Fortnite"], tie=False)])
    await page.wait_for_selector("#poll.closed")
    assert await page.text_content("#poll .result") == "The chat has spoken: Fortnite (5 of 8 votes)!"
    assert await texts(page, "#poll .option.winner .name") == ["Fortnite"]
    assert page.dialogs == []


async def test_viewer_text_is_shown_as_text_never_as_markup(browser, overlay):
    page = await open_page(browser, overlay)
    script = "<script>alert(2)</script>"
    await overlay.send([
        act("alert", f"{XSS} sent 1× Rose!", "x", tier=XSS),
        act("shoutout", f"Everyone say hi to {script}!", "x"),
        act("cta", f"Follow {XSS}"),
        act("poll", f"Best? {XSS}", options=[XSS, "<b>bold</b>"], duration_ms=60_000),
        act("leaderboard", "", top=[{"rank": 1, "nickname": XSS, "diamonds": 5},
                                    {"rank": "<i>2</i>", "nickname": "<svg onload=alert(3)>", "diamonds": "x"}]),
        act("my_custom_kind", XSS),  # not shown: only overlay kinds are
    ])
    await page.wait_for_selector("#board:not([hidden])")
    await page.wait_for_selector(".alert.kind-shoutout")
    assert await texts(page, "#alerts .text") == [f"Everyone say hi to {script}!", f"{XSS} sent 1× Rose!"]
    assert await page.text_content("#banner .text") == f"Follow {XSS}"
    assert await page.text_content("#poll .question") == f"Best? {XSS}"
    assert await texts(page, "#poll .name") == [XSS, "<b>bold</b>"]
    assert await texts(page, "#board .name") == [XSS, "<svg onload=alert(3)>"]
    assert await page.locator("img, svg, b, i").count() == 0
    assert await page.locator("script").count() == 1  # overlay.js only
    assert await page.locator(".alert >> nth=1").get_attribute("class") == "alert kind-alert"  # tier refused
    assert "&lt;img src=x onerror=alert(1)&gt;" in await page.inner_html("#banner")
    await page.wait_for_timeout(300)
    assert page.dialogs == []


async def test_a_page_loaded_mid_stream_gets_the_current_state(browser, overlay):
    await overlay.send([
        act("poll", "Next game?", options=["A", "B"], duration_ms=120_000),
        act("poll_update", "", question="Next game?", votes={"A": 2, "B": 6}, total=8),
        act("leaderboard", "", top=[{"rank": 1, "nickname": "Lena", "diamonds": 300},
                                    {"rank": 2, "nickname": "Ana", "diamonds": 20}]),
        act("cta", "Share the live! 🔗"),
        act("alert", "old news"),  # alerts are moments, not state
    ])
    page = await open_page(browser, overlay)
    await page.wait_for_selector("#poll:not([hidden])")
    assert await texts(page, "#poll .votes") == ["2", "6"]
    assert await page.locator("#poll .fill").evaluate_all("fills => fills.map(f => f.style.width)") == ["25%", "75%"]
    assert await texts(page, "#board .name") == ["Lena", "Ana"]
    assert await page.text_content("#banner .text") == "Share the live! 🔗"
    assert await page.locator(".alert").count() == 0


async def test_the_page_reconnects_after_the_server_restarts(browser, overlay):
    page = await open_page(browser, overlay, "?alert_ms=60000&retry_max_ms=1000")
    await overlay.send([act("leaderboard", "", top=[{"rank": 1, "nickname": "Lena", "diamonds": 300}])])
    await page.wait_for_selector("#board:not([hidden])")
    port = overlay.server.port

    await overlay.server.stop()
    await page.wait_for_function("() => document.documentElement.dataset.ws !== 'open'")
    await page.wait_for_timeout(1500)  # a few failed attempts while nobody listens
    await overlay.server.start()
    assert overlay.server.port == port

    await page.wait_for_function("() => document.documentElement.dataset.connects === '2'", timeout=10_000)
    await until(lambda: overlay.server.clients == 1)
    await overlay.send([act("alert", "back again", "ana")])
    await page.wait_for_selector("text=back again")
    assert await texts(page, "#board .name") == ["Lena"]  # the state came again on reconnect
    assert overlay.stats()["connections"] == 2


async def test_tts_is_spoken_within_the_limits_and_not_with_tts_off(browser, overlay):
    page = await open_page(browser, overlay)
    quiet = await open_page(browser, overlay, "?tts=0")
    await until(lambda: overlay.server.clients == 2)
    await overlay.send([
        act("tts", "Ana says: hello there", "ana"),
        Action(T0 + 1000, "tts", "Ana says: me again", "test", "ana"),  # within ana's 30 s
        Action(T0 + 2000, "tts", "Bob says: hi", "test", "bob"),
        act("alert", "done"),
    ])
    await page.wait_for_selector("text=done")
    await quiet.wait_for_selector("text=done")
    assert await page.evaluate("window.__spoken") == ["Ana says: hello there", "Bob says: hi"]
    assert await quiet.evaluate("window.__spoken") == []
    assert overlay.stats()["tts_dropped_user"] == 1


async def test_a_theme_by_name_and_the_users_css_file_style_the_page(browser, tmp_path):
    css = tmp_path / "mine.css"
    css.write_text(":root { --accent: rgb(1, 2, 3); }\n")
    sink = OverlaySink(port=0, css=css)
    await sink.start()
    try:
        accent = "getComputedStyle(document.documentElement).getPropertyValue('--accent').trim()"
        page = await open_page(browser, sink, "?theme=neon")
        await page.wait_for_function(f"() => {accent} === 'rgb(1, 2, 3)'")  # user.css loads last, wins
        css.write_text(".alert { color: rgb(4, 5, 6); }\n")  # read on every load: edits need no restart
        await page.reload()
        await page.wait_for_function(f"() => {accent} === '#00e5ff'")  # the theme shows through
        await sink.send([act("alert", "styled")])
        assert await page.locator(".alert").evaluate("e => getComputedStyle(e).color") == "rgb(4, 5, 6)"
        odd = await open_page(browser, sink, "?theme=../../server")  # not a plain name: ignored
        assert await odd.evaluate(accent) == "#a970ff"
        assert await odd.locator("link[href*='themes']").count() == 0
    finally:
        await sink.close()
