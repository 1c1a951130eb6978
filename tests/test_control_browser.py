"""The control page in a real headless Chromium (Debian's, through playwright): the bot runs in
this process (run_daemon on loopback, events from the page's own test-event form). The feed
updates, a test gift gives its thank-you and its trace, mute stops the chat sink and unmute
resumes it, and an ``<img onerror>`` nickname stays text. A screenshot goes to the test's tmp dir
(and to ``$LIVEBOT_SCREENSHOT_DIR``: ``LIVEBOT_SCREENSHOT_DIR=docs`` refreshes the README's)."""

from __future__ import annotations

import os
from pathlib import Path

from test_control_page import Bot, until
from test_overlay_browser import browser  # noqa: F401  (the fixture: Debian's chromium, or the module is skipped)

XSS = '<img src=x onerror=alert(1)>'


async def fire(page, kind: str, user: str, **fields) -> None:
    await page.select_option("#test-type", kind)
    await page.fill("#test-form input[name=user]", user)
    for name, value in fields.items():
        if name == "streak":
            await page.set_checked("#test-form input[name=streak]", bool(value))
        else:
            await page.fill(f"#test-form input[name={name}]", str(value))
    await page.click("#test-form button[type=submit]")


async def test_the_control_page_live(browser, tmp_path):
    bot = Bot(tmp_path)
    await bot.start()
    try:
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        await page.goto(bot.url + "/")
        await page.wait_for_selector("#conn.ok")
        await page.wait_for_selector("#test-type option[value=gift]", state="attached")

        # the feed updates, a test gift gives its thank-you, and its trace is a click away
        await fire(page, "gift", "cleo", gift="Lion", diamonds=2, count=3)
        await page.wait_for_selector("#actions li:has-text('Thank you cleo for 3x Lion!')")
        await until(lambda: bot.sent.lines == ["Thank you cleo for 3x Lion!"])
        await page.click("#events li:has-text('cleo')")
        await page.wait_for_selector("#trace .row.fired[data-rule=thank-gift]")
        assert "`when` false: event.total_diamonds=6" in await page.inner_text("#trace .row[data-rule=big]")
        await page.click("#actions li:has-text('Thank you cleo')")
        await page.wait_for_selector("#trace-title:has-text('rule thank-gift')")

        # mute stops the chat sink; unmute resumes it
        await page.click("#mute-chat")
        await page.wait_for_selector("#mute-chat.on")
        await fire(page, "chat", "ana", text="hello there")
        await page.wait_for_selector("#actions li:has-text('Hi ana')")
        assert await page.is_visible("#actions li:has-text('Hi ana') .muted")
        assert bot.sent.lines == ["Thank you cleo for 3x Lion!"]
        await page.click("#mute-chat")
        await page.wait_for_selector("#mute-chat:not(.on)")
        await fire(page, "chat", "bob", text="hi again")
        await until(lambda: bot.sent.lines[-1:] == ["Hi bob"])
        assert "Hi ana" not in bot.sent.lines

        # a nickname that is HTML stays text, in the feed and in the actions
        await fire(page, "chat", XSS, text=XSS)
        await page.wait_for_selector(f"#actions li:has-text('Hi {XSS}')")
        assert await page.locator("#events img, #actions img, #trace img").count() == 0
        assert XSS in await page.inner_text("#events")
        await page.click(f"#events li:has-text('{XSS}')")
        await page.wait_for_selector("#trace .row[data-rule=welcome]")
        assert await page.locator("#trace img").count() == 0
        assert dialogs == []

        # a bigger gift for the picture, and the screenshot
        await fire(page, "gift", "dan", gift="Universe", diamonds=34999, count=1)
        await page.wait_for_selector("#actions li:has-text('big gift')")
        await page.click("#events li:has-text('Universe')")
        await page.wait_for_selector("#trace .row.fired[data-rule=big]")
        shot = await page.screenshot()
        (tmp_path / "control.png").write_bytes(shot)
        if folder := os.environ.get("LIVEBOT_SCREENSHOT_DIR"):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "control.png").write_bytes(shot)
    finally:
        await bot.stop()
