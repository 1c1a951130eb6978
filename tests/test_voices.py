"""TTS voices per viewer: stable by user id (every run, every stream), picked with a command and
kept over streams in the state database, who may be spoken, load errors, and the page speaking
with the viewer's voice and language in a real headless Chromium."""

from __future__ import annotations

import pytest

from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules_text
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import chat, gift, run_events, user

T = 1_767_225_600_000
VOICES = "[{name: Voice A, lang: en-US}, {name: Voice B, lang: en-GB}, {name: Voice C, lang: es-ES}]"


def rules(who: str = "everyone", extra: str = "") -> str:
    return f"""
settings:
  tts: {{voices: {VOICES}, who: {who}{extra}}}
rules:
  - id: read
    on: chat
    when: not event.text.startswith('!')
    do: [ {{tts: "{{{{ event.text }}}}"}} ]
  - id: pick
    command: "!voice"
    do: [ {{voice: "{{{{ args | join(' ') }}}}"}} ]
"""


def spoken(actions):
    return [(a.user, a.data.get("voice"), a.data.get("lang")) for a in actions if a.kind == "tts"]


def test_each_viewer_keeps_one_voice_chosen_by_their_id():
    names = [f"viewer{i}" for i in range(30)]
    events = [chat(T + i, "hi", n) for i, n in enumerate(names)] + [chat(T + 100 + i, "again", n)
                                                                      for i, n in enumerate(names)]
    got = spoken(run_events(events, rules()))
    by_user: dict[str, set] = {}
    for who, voice, lang in got:
        by_user.setdefault(who, set()).add((voice, lang))
    assert all(len(v) == 1 for v in by_user.values())  # the same voice every time
    assert {next(iter(v)) for v in by_user.values()} == {("Voice A", "en-US"), ("Voice B", "en-GB"),
                                                          ("Voice C", "es-ES")}  # spread over the voices
    assert got == spoken(run_events(events, rules()))  # and in every run


def test_a_picked_voice_is_kept_over_streams(tmp_path):
    ruleset = load_rules_text(rules())
    store = SqliteStore(tmp_path / "s.db")
    keeper = StateKeeper(store, "room")
    engine = keeper.open(Engine(ruleset), T)
    out = engine.feed(chat(T, "!voice c", "ana"), T)
    assert [a.text for a in out] == ["@ana your voice is now Voice C"]
    keeper.finish(engine, T + 1)
    store.close()
    store = SqliteStore(tmp_path / "s.db")
    engine = StateKeeper(store, "room").open(Engine(ruleset), T + 86_400_000)
    assert spoken(engine.feed(chat(T + 86_400_000, "hi", "ana"), T + 86_400_000)) == [("ana", "Voice C", "es-ES")]
    store.close()


def test_who_may_be_spoken():
    events = [chat(T, "one", "ana"), chat(T + 1, "two", user("sub", is_subscriber=True)),
              chat(T + 2, "three", user("mod", is_moderator=True)), gift(T + 3, "Lion", 60, 1, "ana"),
              chat(T + 4, "four", "ana"), gift(T + 5, "Rose", 1, 1, "bob"), chat(T + 6, "five", "bob")]
    assert [w for w, _, _ in spoken(run_events(events, rules("subscribers")))] == ["sub", "mod"]
    assert [w for w, _, _ in spoken(run_events(events, rules("gifters", ", min_diamonds: 50")))] == ["mod", "ana"]


def test_bad_tts_settings_and_a_voice_action_without_voices_are_load_errors():
    with pytest.raises(RuleLoadError) as err:
        load_rules_text("settings:\n  tts: {who: gifter}\nrules:\n  - id: v\n    command: '!v'\n"
                        "    do: [ {voice: x} ]\n", "t.yaml")
    assert err.value.problems == ["t.yaml:2:14: 'who' is everyone, subscribers or gifters",
                                  "t.yaml:6:19: rule v: 'voice' needs 'settings: tts: voices:' (the voices viewers "
                                  "may pick)"]


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="needs Debian's chromium")
async def test_the_page_speaks_in_the_viewers_language():
    async_api = pytest.importorskip("playwright.async_api")
    from bot.sinks.overlay import OverlaySink

    sink = OverlaySink(port=0, tts_per_minute=10, tts_user_gap_ms=0)
    await sink.start()
    engine = Engine(load_rules_text(rules()))
    out = []
    for ev in [chat(T, "!voice b", "ana"), chat(T + 1, "hello there", "ana")]:
        out += engine.feed(ev, ev.ts)
    try:
        async with async_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page()
                await page.add_init_script("window.__spoken = []; if (window.speechSynthesis) { "
                                           "speechSynthesis.speak = (u) => window.__spoken.push([u.text, u.lang]); }")
                await page.goto(sink.url + "?lang=fr-FR")
                await page.wait_for_function("() => document.documentElement.dataset.ws === 'open'")
                await sink.send(out)
                await page.wait_for_function("() => window.__spoken.length === 1")
                assert await page.evaluate("window.__spoken") == [["hello there", "en-GB"]]
            finally:
                await browser.close()
    finally:
        await sink.close()
