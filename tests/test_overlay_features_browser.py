"""Goals and the subathon clock on the overlay page, in a real headless Chromium: actions made by
the engine from rules (not written by hand) go through the overlay sink; the bars fill and move,
a reached step flashes, the clock counts down and stops when paused, a page that connects later
gets both, titles are text, themes apply."""

from __future__ import annotations

from test_overlay_browser import XSS, act, browser, open_page, overlay, save_screenshot, texts  # noqa: F401

from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.testing import chat, event, gift

T = 1_795_200_000_000
RULES = """
settings:
  goals:
    - {id: likes, type: likes, title: "Like goal", steps: [100, 500]}
    - {id: roses, type: gift, gift: Rose, title: "Roses", steps: [10]}
  subathon:
    start: 1h
    add: {follow: 1m}
rules:
  - id: reached
    on: goal_reached
    do: [ {alert: "{{ event.title }} reached!"} ]
"""


def feed(engine: Engine, events) -> list:
    out = []
    for ev in events:
        out += engine.feed(ev, ev.ts)
    return out


async def test_goal_bars_fill_flash_when_reached_and_the_clock_counts_down(browser, overlay, tmp_path):  # noqa: F811
    page = await open_page(browser, overlay, "?alert_ms=60000&theme=neon")
    engine = Engine(load_rules_text(RULES))
    await overlay.send(feed(engine, [event("like", T, "ana", count=50, total=50), gift(T + 10, "Rose", 1, 4, "bob")]))
    await page.wait_for_selector("#goals:not([hidden]) .goal >> nth=1")
    assert await texts(page, "#goals .title") == ["Like goal", "Roses"]
    assert await texts(page, "#goals .count") == ["50 / 100", "4 / 10"]
    assert await page.locator("#goals .fill").evaluate_all("f => f.map(x => x.style.width)") == ["50%", "40%"]
    # The bar slides (a CSS transition), and themes style it.
    assert await page.locator("#goals .fill >> nth=0").evaluate("e => getComputedStyle(e).transitionProperty") == "width"
    assert "rgba(0, 229, 255" in await page.locator("#goals .goal >> nth=0").evaluate(
        "e => getComputedStyle(e).boxShadow")

    # 60 more likes cross 100: the next step's target, the flash, and the rule's alert.
    await overlay.send(feed(engine, [event("like", T + 2000, "cleo", count=60, total=110)]))
    await page.wait_for_function("() => document.querySelector('#goals .goal').dataset.target === '500'")
    assert await page.locator("#goals .goal >> nth=0").get_attribute("class") == "goal reached"
    assert await texts(page, "#goals .count") == ["110 / 500", "4 / 10"]
    await page.wait_for_selector("text=Like goal reached!")

    # The clock: shown, counting down between updates.
    clock = await page.text_content("#timer .clock")
    assert clock.startswith(("1:00:0", "59:5"))
    first = int(await page.get_attribute("#timer", "data-remaining"))
    await page.wait_for_function(f"() => Number(document.getElementById('timer').dataset.remaining) < {first}")
    await save_screenshot(page, tmp_path, "overlay-goals.png")

    # Paused: it stands still, and says so.
    await overlay.send(feed(engine, [event("subathon_control", T + 3000, None, op="pause")]))
    await page.wait_for_selector("#timer.paused")
    stopped = await page.get_attribute("#timer", "data-remaining")
    # the page's own clock moves on 1.3 s (a running clock would have ticked a second off), and a tick runs
    await page.evaluate("() => { window.__t0 = performance.now(); window.__ticks = 0; "
                        "setInterval(() => { if (performance.now() - window.__t0 > 1300) window.__ticks++; }, 250); }")
    await page.wait_for_function("() => window.__ticks >= 2")
    assert await page.get_attribute("#timer", "data-remaining") == stopped
    assert page.dialogs == []


async def test_a_page_that_connects_later_gets_the_bars_and_the_clock(browser, overlay):  # noqa: F811
    engine = Engine(load_rules_text(RULES))
    await overlay.send(feed(engine, [chat(T, "hi", "ana"), event("follow", T + 10, "bob"),
                                     gift(T + 1500, "Rose", 1, 12, "cleo"),
                                     event("subathon_control", T + 1600, None, op="pause")]))
    page = await open_page(browser, overlay)
    await page.wait_for_selector("#goals .goal")
    assert await texts(page, "#goals .count") == ["12 ✓"]  # every step of the roses goal reached
    assert await page.get_attribute("#goals .goal", "class") == "goal done"  # no flash on a reconnect
    await page.wait_for_selector("#timer.paused")
    assert await page.text_content("#timer .clock") == "1:00:59"


async def test_goal_titles_are_text_and_odd_goal_data_is_refused(browser, overlay):  # noqa: F811
    page = await open_page(browser, overlay)
    await overlay.send([act("goal", "", id=XSS, title=XSS, progress=3, target=10),
                        act("goal", "", id="x", title="nan", progress="<b>", target={"a": 1}),
                        act("timer", "", remaining_ms="soon", paused="yes")])
    await page.wait_for_selector("#goals .goal >> nth=1")
    assert await texts(page, "#goals .title") == [XSS, "nan"]
    assert await texts(page, "#goals .count") == ["3 / 10", "0 / 0"]
    assert await page.locator("img, b").count() == 0
    assert await page.text_content("#timer .clock") == "0:00"
    assert page.dialogs == []


async def test_a_first_time_chatter_is_highlighted_and_the_credits_roll(browser, overlay, tmp_path):  # noqa: F811
    page = await open_page(browser, overlay)
    engine = Engine(load_rules_text("""
rules:
  - id: first
    on: first_chat
    do: [ {kind: highlight, text: "{{ user.nickname }}: {{ event.text }}"} ]
  - id: credits
    on: live_end
    do: [ {credits: "Thank you for watching!"} ]
"""))
    events = [chat(T, "hello <img src=x onerror=alert(1)>", "ana"), chat(T + 1, "again", "ana"),
              event("follow", T + 2, "cleo"), gift(T + 3, "Lion", 500, 1, XSS), event("live_end", T + 9, None)]
    await overlay.send(feed(engine, events[:3]))
    await page.wait_for_selector(".alert.kind-highlight")
    assert await texts(page, ".alert.kind-highlight .text") == ["ana: hello <img src=x onerror=alert(1)>"]
    assert "first time" in await page.locator(".alert.kind-highlight .text").evaluate(
        "e => getComputedStyle(e, '::before').content")

    await overlay.send(feed(engine, events[3:]))
    await page.wait_for_selector("#credits:not([hidden]) .roll")
    assert await page.text_content("#credits h1") == "Thank you for watching!"
    assert await texts(page, "#credits .heading") == ["Top gifters", "New followers", "First time here"]
    assert await texts(page, "#credits .name") == [f"{XSS} (500)", "cleo", "ana"]
    start = await page.locator("#credits .roll").evaluate("e => e.getBoundingClientRect().top")
    await page.wait_for_function(  # it rolls up
        f"() => document.querySelector('#credits .roll').getBoundingClientRect().top < {start} - 20")
    assert await page.locator("img").count() == 0
    assert page.dialogs == []


async def test_a_giveaway_and_its_winner_are_shown(browser, overlay):  # noqa: F811
    from bot.testing import user

    page = await open_page(browser, overlay)
    engine = Engine(load_rules_text("""
rules:
  - id: ga
    command: "!giveaway"
    do: [ {giveaway: {text: "Type !join to win", duration: 1m}} ]
"""))
    out = feed(engine, [chat(T, "!giveaway", user("mod", is_moderator=True)), chat(T + 1, "!join", XSS)])
    out += engine.advance(T + 60_000)
    await overlay.send(out)
    await page.wait_for_selector(".alert.kind-giveaway_result")
    assert await texts(page, ".alert.kind-giveaway_result .text") == [XSS]
    assert await texts(page, ".alert.kind-giveaway .text") == ["Type !join to win"]
    assert await page.locator("img").count() == 0
    assert page.dialogs == []
