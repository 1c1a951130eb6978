"""Sound alerts: the overlay server serves only plain audio file names from its folder (content
types, a size limit, no way out of the folder), the sink drops what is missing and keeps to the
limits, rules and per-gift settings make the actions, and the page plays them one at a time in a
real headless Chromium."""

from __future__ import annotations

import io
import os
import struct
import wave

import aiohttp
import pytest

from bot.actions.model import Action
from bot.config import ConfigError, load_config
from bot.sinks.overlay import OverlaySink
from bot.sinks.overlay.sounds import SoundBoard
from bot.testing import gift, run_events

T = 1_795_200_000_000


def wav(ms: int = 250) -> bytes:
    """A short, quiet, valid WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<h", 0) * (8000 * ms // 1000))
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "sounds"
    d.mkdir()
    (d / "rose.wav").write_bytes(wav())
    (d / "lion.mp3").write_bytes(b"ID3" + b"\0" * 100)
    (d / "big.ogg").write_bytes(b"\0" * 5000)
    (d / "notes.txt").write_text("not a sound")
    (tmp_path / "secret.mp3").write_bytes(b"secret")
    (d / "escape.mp3").symlink_to(tmp_path / "secret.mp3")
    return d


@pytest.fixture
async def sink(folder):
    s = OverlaySink(port=0, sounds=SoundBoard(folder, volume=0.5, per_minute=3, user_gap_ms=10_000, max_bytes=4096))
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def get(sink, path: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{sink.server.port}/overlay/sounds/{path}") as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def test_only_plain_audio_files_inside_the_folder_are_served(sink, folder):
    status, ctype, body = await get(sink, "rose.wav")
    assert (status, ctype, body) == (200, "audio/wav", (folder / "rose.wav").read_bytes())
    assert (await get(sink, "lion.mp3"))[:2] == (200, "audio/mpeg")
    for path in ("..%2Fsecret.mp3", "%2E%2E%2Fsecret.mp3", "escape.mp3", "notes.txt", "nope.mp3", ".hidden.mp3",
                 "..%5Csecret.mp3"):
        assert (await get(sink, path))[0] == 404, path
    assert (await get(sink, "big.ogg"))[0] == 413  # over max_bytes
    assert sink.stats()["sound_served"] == 2


async def test_the_sink_drops_missing_files_and_keeps_to_the_limits(sink):
    def sound(name, user, ts):
        return Action(T + ts, "sound", name, "r", user)

    checked = [sink.sounds.check(a) for a in [
        sound("rose.wav", "ana", 0), sound("rose.wav", "ana", 1000),  # ana again within 10 s
        sound("../secret.mp3", "bob", 2000), sound("escape.mp3", "bob", 2100), sound("big.ogg", "bob", 2200),
        sound("lion.mp3", "bob", 3000), sound("rose.wav", "cleo", 4000),
        sound("rose.wav", "dan", 5000),  # a fourth within the minute
        sound("rose.wav", "dan", 61_000)]]
    played = [(a.text, a.user, a.data["volume"]) for a in checked if a is not None]
    assert played == [("rose.wav", "ana", 0.5), ("lion.mp3", "bob", 0.5), ("rose.wav", "cleo", 0.5),
                      ("rose.wav", "dan", 0.5)]
    stats = sink.stats()
    assert (stats["sound_bad_name"], stats["sound_missing"], stats["sound_too_big"], stats["sound_limited"]) == (1, 1, 1, 2)


def test_rules_make_sound_actions_per_gift_and_per_tier():
    rules = """
settings:
  sounds:
    gifts: {Rose: rose.wav, "7": lion.mp3}
rules:
  - id: big
    on: gift
    tiers:
      - {min: 100, do: [ {sound: big.ogg} ]}
"""
    actions = run_events([gift(T, "Rose", 1, 9, "ana", gift_type=1), gift(T + 500, "Rose", 1, 99, "ana", gift_type=1,
                                                                              streak_end=True),
                          gift(T + 1000, "Lion", 29_999, 1, "bob", gift_id=7)], rules)
    assert [(a.rule, a.text, a.user) for a in actions] == [
        ("sounds", "rose.wav", "ana"), ("sounds", "lion.mp3", "bob"), ("big", "big.ogg", "bob")]  # 99 roses: one


def test_bad_sound_settings_are_errors_with_their_position(tmp_path):
    from bot.engine.loader import RuleLoadError, load_rules_text

    with pytest.raises(RuleLoadError) as err:
        load_rules_text("settings:\n  sounds:\n    gifts: {Rose: ../x.mp3}\nrules: []\n", "s.yaml")
    assert err.value.problems == ["s.yaml:3:19: a sound is a plain file name in the sounds folder with an audio "
                                  "extension (.mp3, .ogg, .wav, ...), e.g. rose.mp3: no folders, no '..'"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sinks:\n  overlay:\n    sounds:\n      volume: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.problems == [f"{cfg}:4:15: 'volume' must be a number from 0 to 1, such as 0.8"]


# -- in the browser ------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
async def test_the_page_plays_sounds_one_at_a_time(sink):
    async_api = pytest.importorskip("playwright.async_api")
    record = """
    window.__sounds = [];
    window.__audios = [];
    const play = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = function () {
      // how many other sounds are playing when this one starts: one at a time means none
      const busy = window.__audios.filter((a) => !a.paused && !a.ended).length;
      window.__audios.push(this);
      window.__sounds.push(["play", this.src.split("/").pop(), this.volume, busy]);
      this.addEventListener("ended", () => window.__sounds.push(["ended", this.src.split("/").pop()]));
      return play.call(this);
    };
    """
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = await browser.new_page()
            await page.add_init_script(record)
            await page.goto(sink.url)
            await page.wait_for_function("() => document.documentElement.dataset.ws === 'open'")
            await sink.send([Action(T, "sound", "rose.wav", "r", "ana"), Action(T + 1, "sound", "rose.wav", "r", "bob"),
                             Action(T + 2, "sound", "../secret.mp3", "r", "cleo")])
            await page.wait_for_function("() => window.__sounds.length >= 4")
            got = await page.evaluate("window.__sounds")
            assert sorted(map(tuple, got)) == [("ended", "rose.wav"), ("ended", "rose.wav"),
                                               ("play", "rose.wav", 0.5, 0), ("play", "rose.wav", 0.5, 0)]
            quiet = await browser.new_page()
            await quiet.add_init_script(record)
            await quiet.goto(sink.url + "?sounds=0")
            await quiet.wait_for_function("() => document.documentElement.dataset.ws === 'open'")
            await sink.send([Action(T + 60_000, "sound", "lion.mp3", "r", "dan")])
            await page.wait_for_function("() => window.__sounds.length >= 5")
            assert await quiet.evaluate("window.__sounds") == []
        finally:
            await browser.close()


def test_a_sound_name_that_could_never_play_is_a_load_error():
    from bot.engine.loader import RuleLoadError, load_rules_text

    text = ("settings:\n  sounds:\n    gifts: {Rose: notes.txt, Lion: lion.mp3}\nrules:\n  - id: s\n    on: follow\n"
            "    do: [ {sound: ../../etc/passwd.mp3}, {sound: '{{ user.unique_id }}.mp3'}, {sound: ok.wav} ]\n")
    with pytest.raises(RuleLoadError) as err:
        load_rules_text(text, "s.yaml")
    assert [p.split(": ", 1)[0] for p in err.value.problems] == ["s.yaml:3:19", "s.yaml:7:19"]
    assert all("plain file name" in p for p in err.value.problems)
