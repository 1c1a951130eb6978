"""The policy guard (bot/policy): packs at load, viewer text at run time, moderation."""

from __future__ import annotations

import re
import unicodedata

import pytest

from bot.cli import main
from bot.engine.core import Engine
from bot.engine.loader import RuleLoadError, load_rules_text
from bot.events.model import User
from bot.policy.load import findings
from bot.testing import chat, event, gift, run_events, user

# Every channel a viewer's text can reach: chat, TTS, the overlay (alert, shout-out), a custom kind.
ECHO = """
rules:
  - id: greet
    on: chat
    do:
      - say: "Hi {{ user.nickname }}!"
      - tts: "{{ user.nickname }} says {{ event.text }}"
      - alert: { text: "{{ user.nickname }}", data: { who: "{{ user.nickname }}", said: "{{ event.text }}" } }
      - kind: confetti
        text: "{{ event.text | upper }}"
  - id: so
    command: "!so"
    do:
      - shoutout: "Go follow {{ args | join(' ') }}!"
"""

# An independent reading of the output: what a person (or TTS) would take from it, letters only.
_LOOK = str.maketrans({"а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ѕ": "s",
                       "ᴀ": "a", "ᴘ": "p", "ʏ": "y", "ʟ": "l", "0": "o", "1": "i", "3": "e", "4": "a", "5": "s",
                       "7": "t", "@": "a", "$": "s", "β": "b", "ι": "i", "τ": "t", "ν": "v", "ο": "o"})


def _read(text: str) -> str:
    s = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    s = "".join(c for c in s if unicodedata.category(c) not in ("Cf", "Mn")).casefold().translate(_LOOK)
    return re.sub(r"[^a-z]", "", s.replace("dot", ""))


def _shows(text: str, forbidden: str) -> bool:
    """Whether a reader finds ``forbidden`` in ``text`` (digits: among its digits)."""
    if forbidden.isdigit():
        return forbidden in re.sub(r"\D", "", text)
    return forbidden in _read(text)


# (nickname or comment, what must not come out of it), built to slip past a plain filter
ADVERSARIAL = [
    ("bit.ly/free-coins", "bitly"),
    ("ｂｉｔ．ｌｙ／ｆｒｅｅ", "bitly"),  # full-width
    ("bit\u200b.\u200bly/x", "bitly"),  # zero-width spaces
    ("b i t . l y / free", "bitly"),  # spaced out
    ("bit dot ly slash free", "bitly"),  # "dot"
    ("bit(dot)ly/coins", "bitly"),
    ("free-coins . com", "freecoinscom"),
    ("get coins at freecoins[.]xyz", "freecoinsxyz"),
    ("раураl.me/ana", "paypal"),  # Cyrillic look-alikes
    ("pay me on venmo @ana-22", "venmo"),
    ("venmo: @anaxq", "anaxq"),  # the handle goes too, not only the brand
    ("pay me on venmo @anaxq", "anaxq"),
    ("c a s h a p p $anaxo", "cashapp"),
    ("$anaxo22 on cash app", "anaxo"),
    ("DM me to pay", "dmmetopay"),
    ("ana@mail.com", "mailcom"),
    ("call 555 123 4567", "5551234567"),
    ("f u c k", "fuck"),
    ("fuuuuck you", "fuuuuck"),
    ("sh\u200bit stream", "shit"),
    ("ｆｕｃｋ", "fuck"),
    ("f.u.c.k", "fuck"),
    ("Send 10 roses and I will follow you back!", "rosesandiwillfollow"),
    ("tap the screen 100 times", "tapthescreen"),
    ("𝐛𝐢𝐭.𝐥𝐲/𝐱", "bitly"),  # mathematical bold
    ("ⓑⓘⓣ.ⓛⓨ/x", "bitly"),  # circled letters
    ("bit。ly/x", "bitly"),  # ideographic full stop
    ("ΒΙΤ.LY/x", "bitly"),  # Greek capitals
    ("p\u200da\u200dy\u200dp\u200da\u200dl", "paypal"),  # zero-width joiners
    ("V3NM0 me", "venmo"),  # leet in capitals
    ("telegram: @ana_x", "telegram"),
]


@pytest.mark.parametrize("payload,forbidden", ADVERSARIAL)
def test_adversarial_viewer_text_never_reaches_chat_tts_or_overlay(payload, forbidden):
    rules = load_rules_text(ECHO)
    evs = [chat(1000, "hello", User("1", "u1", payload)),  # as a nickname
           chat(2000, payload, "u2"),  # as a comment
           chat(3000, "!so " + payload, "u3")]  # as a command argument
    actions = run_events(evs, rules)
    for a in actions:
        blob = a.text + " " + " ".join(str(v) for k, v in a.data.items() if k != "policy")
        assert not _shows(blob, forbidden), (a.kind, blob)


@pytest.mark.parametrize("payload,forbidden", ADVERSARIAL)
def test_without_the_guard_each_payload_does_come_out(payload, forbidden):
    """The check above can fail: with the guard off, the reader finds every payload in the output."""
    rules = load_rules_text("settings:\n  policy: { packs: [] }\n" + ECHO)
    actions = run_events([chat(2000, payload, "u2")], rules)
    assert any(_shows(a.text, forbidden) for a in actions)


def test_masked_parts_are_recorded_on_the_action_and_counted():
    rules = load_rules_text(ECHO)
    engine = Engine(rules)
    actions = run_events([chat(1000, "nice stream, visit bit.ly/x", "u2")], rules, engine=engine)
    tts = next(a for a in actions if a.kind == "tts")
    assert tts.text == "u2 says nice stream, visit ***"
    assert {"check": "link", "field": "event.text", "found": "a link", "done": "masked"} in tts.data["policy"]
    assert "bit.ly" not in str(tts.data)
    assert engine.policy.stats()["masked"]["link"] >= 1


def test_a_nickname_of_nothing_but_a_link_suppresses_the_action_and_counts_it():
    rules = load_rules_text(ECHO)
    engine = Engine(rules)
    actions = run_events([chat(1000, "hello", User("1", "x", "bit.ly/free-coins"))], rules, engine=engine)
    assert [a.kind for a in actions] == ["confetti"]  # the only action without the nickname
    assert engine.policy.stats()["suppressed"]["link"] == 3
    kept = list(engine.policy.suppressed)
    assert len(kept) == 3 and all(d["data"]["policy"][0]["done"] == "suppressed" for d in kept)
    assert all("bit.ly" not in str(d) for d in kept)


def test_clean_viewer_text_is_left_exactly_as_typed():
    rules = load_rules_text(ECHO)
    for nick in ["{{7*7}}", "Ana.433", "Chloé.775", "ᴅᴀʀᴋ ʟᴏʀᴅ", "Zalgo̴ ̷t̶e̷x̸t̴", "<img src=x onerror=alert(1)>",
                 "Kofi.", "李雷", "محمد"]:
        actions = run_events([chat(1000, "where are you from?", User("1", "u", nick))], rules)
        say = next(a for a in actions if a.kind == "say")
        assert say.text == f"Hi {nick}!" and "policy" not in say.data


def test_viewer_text_in_an_engine_made_action_is_screened_too():
    """The leaderboard line is built from nicknames without a template: screened at the exit."""
    rules = load_rules_text("rules:\n  - id: g\n    on: gift\n    do: [ { say: 'ty' } ]\n")
    engine = Engine(rules, board_size=3)
    actions = run_events([gift(1000, "Rose", 10, who=User("1", "u", "visit free-coins.com"))], rules, engine=engine)
    board = next(a for a in actions if a.kind == "leaderboard")
    assert "free-coins" not in board.text and "free-coins" not in str(board.data)


def test_new_action_kinds_pass_through_the_guard():
    rules = load_rules_text("""
rules:
  - id: voice
    on: chat
    do:
      - kind: obs_text
        text: "{{ event.text }}"
      - kind: tts_voice
        text: "{{ user.nickname }}"
        data: { voice: en-US }
""")
    actions = run_events([chat(1000, "go to www.evil.example", User("1", "u", "paypal.me/x"))], rules)
    assert [a.text for a in actions] == ["go to ***"]  # the voice line had nothing left: suppressed


def test_the_creators_own_text_is_not_masked():
    rules = load_rules_text("""
settings:
  snippets: { site: "shop at acme.example/live" }
rules:
  - id: site
    command: "!site"
    do: [ { say: "{{ snippets.site }} or www.acme.example" } ]
""")
    actions = run_events([chat(1000, "!site", "u")], rules)
    assert [a.text for a in actions] == ["shop at acme.example/live or www.acme.example"]


def test_repetition_rate_suppresses_the_same_line_again():
    rules = load_rules_text("""
settings:
  policy: { repeat: { max: 2, window: 1m } }
rules:
  - id: hi
    on: like
    do: [ { say: "Thanks for the likes!" } ]
""")
    engine = Engine(rules)
    actions = run_events([event("like", t, "u", count=1) for t in (0, 1000, 2000, 61_000)], rules, engine=engine)
    assert [a.ts for a in actions] == [0, 1000, 61_000]
    assert engine.policy.stats()["suppressed"] == {"repetition": 1}


MODERATED = """
rules:
  - id: warn
    on: moderation
    do: [ { say: "{{ user.nickname }}, please keep it friendly ({{ event.reason }}, strike {{ event.strikes }})" } ]
  - id: welcome
    on: chat
    once: user
    when: not user.muted
    do: [ { say: "Welcome {{ user.nickname }}!" } ]
  - id: read
    on: chat
    when: not user.muted
    do: [ { tts: "{{ event.text }}" } ]
"""


def test_a_chat_line_with_a_banned_word_makes_a_moderation_event_and_mutes_the_viewer():
    rules = load_rules_text(MODERATED)
    actions = run_events([chat(0, "you are a fucking clown", "troll"), chat(1000, "hi", "ana"),
                          chat(60_000, "hello again", "troll"), chat(700_000, "sorry", "troll")], rules)
    texts = [(a.ts, a.text) for a in actions]
    assert (0, "troll, please keep it friendly (banned-word, strike 1)") in texts
    assert not any("Welcome troll" in t and ts < 600_000 for ts, t in texts)  # muted for 10 minutes
    assert (60_000, "hello again") not in texts
    assert (700_000, "Welcome troll!") in texts and (700_000, "sorry") in texts
    assert (1000, "Welcome ana!") in texts


@pytest.mark.parametrize("lines,reason", [
    (["THIS STREAM IS SO BORING WAKE UP"], "caps"),
    (["join me", "join me", "JOIN ME", "join me"], "repetition"),
    (["free followers at bit . ly / x"], "link"),
    (["send me money on paypal"], "off-platform-payment"),
])
def test_moderation_reasons(lines, reason):
    rules = load_rules_text(MODERATED)
    engine = Engine(rules)
    run_events([chat(i * 1000, t, "v") for i, t in enumerate(lines)], rules, engine=engine)
    assert engine.policy.stats()["moderation"] == {reason: 1}


def test_ordinary_chat_is_not_moderated():
    rules = load_rules_text(MODERATED)
    engine = Engine(rules)
    lines = ["W stream", "hola", "¿de dónde eres?", "hello from Brazil 🇧🇷", "gg", "lol", "LOL", "!HELP", "❤️❤️❤️",
             "what game is this?", "is this live?", "can you say hi to me?", "I love this song so much",
             "Scunthorpe United", "class assignment", "passion fruit", "cocktail", "can you put on a song?",
             "1", "1", "1", "1", "lol", "lol", "lol", "lol"]
    run_events([chat(i * 1000, t, "v") for i, t in enumerate(lines)], rules, engine=engine)  # one viewer
    assert engine.policy.stats() == {"masked": {}, "suppressed": {}, "moderation": {}}


def test_the_strict_pack_limits_repeated_lines_by_default():
    rules = load_rules_text("settings:\n  policy: { packs: [strict] }\n" + MODERATED)
    engine = Engine(rules)
    run_events([chat(i * 1000, t, "v") for i, t in enumerate(["lol", "LOL", "lol", "lol", "lol", "1", "1"])],
               rules, engine=engine)
    # TTS reads the same line at most 3 times a minute: the 4th and 5th "lol" (LOL counts too) are not read
    assert engine.policy.stats()["suppressed"] == {"repetition": 2}


# -- at load -----------------------------------------------------------------------------------

RISKY = """rules:
  - id: roses
    on: follow
    do:
      - say: "Send 10 roses and I will follow you back!"
      - alert: "Gift to unlock the next song"
  - id: bait
    every: 30s
    do:
      - cta: "Tap the screen 100 times!"
      - say: "Pay me on PayPal: paypal.me/{{ user_handle | default('me') }} or DM me to pay"
"""


def test_validate_reports_each_risky_text_with_its_position(tmp_path, capsys):
    f = tmp_path / "risky.yaml"
    f.write_text(RISKY.replace("{{ user_handle | default('me') }}", "me"), encoding="utf-8")
    assert main(["validate", str(f)]) == 0  # warnings by default
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{f}:5:15: policy gift-for-favour: 'Send 10 roses and I will' in say text of "
                             "rule roses (high): gifts or likes traded for a favour")
    ids = [re.match(r".*?:(\d+):(\d+): policy (\S+):", line).groups() for line in out if ": policy " in line]
    assert ("6", "17", "gift-for-favour") in ids
    assert ("8", "12", "repetition") in ids
    assert ("10", "15", "engagement-bait") in ids
    assert any(i[2] == "off-platform-payment" for i in ids) and any(i[2] == "link" for i in ids)
    assert main(["validate", "--policy", "strict", str(f)]) == 1
    assert main(["validate", "--policy", "tiktok-live", str(f)]) == 1


def test_the_starter_pack_passes_tiktok_live_and_strict_reports_only_the_lines_the_readme_names(capsys):
    assert main(["validate", "--policy", "tiktok-live", "rules/"]) == 0
    assert main(["validate", "--policy", "strict", "rules/"]) == 1
    out = [line for line in capsys.readouterr().out.splitlines() if ": policy " in line]
    assert [line.split(": policy ")[0] for line in out] == ["rules/chat.yaml:16:65", "rules/reminders.yaml:8:36",
                                                            "rules/reminders.yaml:17:15"]
    readme = open("README.md", encoding="utf-8").read()
    for where in ("rules/chat.yaml:16", "rules/reminders.yaml:8", "rules/reminders.yaml:17"):
        assert where in readme


def test_allow_list_and_own_words(tmp_path):
    rules = load_rules_text("""
settings:
  snippets: { socials: "Instagram: @me.creator" }
  policy:
    packs: [strict]
    allow: ["@me.creator"]
    words: [potato]
    phrases: ["go away"]
rules:
  - id: r
    on: chat
    do: [ { say: "{{ snippets.socials }} — {{ event.text }}" } ]
""")
    assert findings(rules.policy) == []
    actions = run_events([chat(0, "I said p0tat0 go   away", "u"), chat(1000, "p0tat0", "v")], rules)
    assert [a.text for a in actions] == ["Instagram: @me.creator — I said ***"]  # the second: nothing left


@pytest.mark.parametrize("policy,message", [
    ("{ packs: [tiktok] }", "3:20: unknown policy pack 'tiktok' (did you mean 'tiktok-live'?)"),
    ("{ lists: [xx] }", "3:20: no shipped word list 'xx'"),
    ("{ repeat: { max: 0 } }", "3:28: 'max' must be a whole number of at least 1"),
    ("{ moderation: { mute: soon } }", "3:33: bad duration 'soon'"),
    ("{ moderation: { caps: 2 } }", "3:33: 'caps' is the share"),
    ("{ allowed: [x] }", "3:13: unknown policy setting 'allowed' (did you mean 'allow'?)"),
])
def test_bad_policy_settings_are_reported_with_their_position(policy, message):
    with pytest.raises(RuleLoadError) as exc:
        load_rules_text(f"settings:\n  chat: {{}}\n  policy: {policy}\nrules: []\n", "s.yaml")
    assert any(p.startswith("s.yaml:" + message) for p in exc.value.problems), exc.value.problems


def test_guard_off_with_no_packs():
    rules = load_rules_text("settings:\n  policy: { packs: [] }\n" + ECHO)
    actions = run_events([chat(1000, "bit.ly/x", "u")], rules)
    assert any(a.kind == "say" for a in actions) and any("bit.ly/x" in a.text for a in actions)
    assert user  # (the helper is used by other tests; keep the import honest)


def test_replay_and_report_summarize_what_the_guard_did(tmp_path, capsys):
    import json

    session = tmp_path / "s.jsonl"
    lines = [
        {"type": "chat", "ts": 1000, "msg_id": "a", "user": {"user_id": "1", "unique_id": "ana", "nickname": "Ana"},
         "data": {"text": "hello"}},
        {"type": "chat", "ts": 2000, "msg_id": "b", "user": {"user_id": "2", "unique_id": "sp", "nickname": "Sp bit.ly/x"},
         "data": {"text": "hi there"}},
        {"type": "chat", "ts": 3000, "msg_id": "c", "user": {"user_id": "3", "unique_id": "x", "nickname": "paypal.me/x"},
         "data": {"text": "yo"}},
    ]
    session.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - id: w\n    on: chat\n    do: [ { say: 'Welcome {{ user.nickname }}!' } ]\n",
                     encoding="utf-8")
    out = tmp_path / "actions.jsonl"
    assert main(["replay", str(session), "--rules", str(rules), "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "policy: masked 1 (link 1); suppressed 1 action(s) (by check: link 1, off-platform-payment 1)" in err
    texts = [json.loads(line)["text"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert texts == ["Welcome Ana!", "Welcome Sp ***!"]
    assert main(["report", str(session), "--actions", str(out), "--policy"]) == 0
    report = capsys.readouterr().out
    assert "actions with masked viewer text: 1 part(s): masked link (user.nickname) 1" in report
    assert "nicknames the guard masks: link 2, off-platform-payment 1" in report  # paypal.me/x is both


def test_strikes_and_mutes_survive_a_snapshot_and_restore():
    from bot.engine.snapshot import restore, snapshot

    rules = load_rules_text(MODERATED)
    first = Engine(rules)
    run_events([chat(0, "you are a fucking clown", "troll")], rules, engine=first)
    saved = snapshot(first)
    second = Engine(rules)
    restore(second, saved)
    actions = run_events([chat(60_000, "hello again", "troll")], rules, engine=second)
    assert actions == []  # still muted after the restart: no welcome, no TTS
    assert second.policy.user_fields("id-troll", 60_000) == {"strikes": 1, "muted_until": 600_000, "muted": True}
    assert second.policy.stats()["moderation"] == {"banned-word": 1}


@pytest.mark.parametrize("text,phone", [
    ("call 555 123 4567", True), ("+1 (555) 123-4567", True), ("07700 900123", True), ("1-800-555-1234", True),
    ("Tonight's top gifters: 1. Mateo (1,015) · 2. Tariq180 (820) · 3. Nia.908 (500)", False),
    ("2. (820) · 3. (500) · 4. (100)", False), ("we hit 1,000,000 likes", False), ("room 12 at 3 pm", False),
])
def test_phone_numbers_and_not_count_lists(text, phone):
    from bot.policy.checks import PolicySettings
    from bot.policy.detect import Detector

    found = [f.check for f in Detector(PolicySettings()).scan(text)]
    assert ("contact" in found) is phone, found


def test_merged_chat_lines_are_screened_too():
    """The chat budget merges waiting lines with the viewers' raw names: the exit screen masks them."""
    rules = load_rules_text("""
settings:
  chat: { per_minute: 1, burst: 1 }
rules:
  - id: welcome
    on: chat
    merge: "Welcome {{ names }}!"
    do: [ { say: "Welcome {{ user.nickname }}!" } ]
""")
    evs = [chat(0, "hi", "first")] + [chat(100 + i, "hi", User(str(i), f"u{i}", n))
                                      for i, n in enumerate(["Ana", "ｂｉｔ．ｌｙ/x", "Bo cashapp $bo"])]
    actions = run_events(evs, rules, until=600_000)
    assert any("Ana" in a.text for a in actions)
    for a in actions:
        assert not _shows(a.text, "bitly") and not _shows(a.text, "cashapp") and "$bo" not in a.text, a.text


@pytest.mark.parametrize("make", [
    lambda n: "x" * n,  # one long word: an e-mail pattern once backtracked over it (found by the fuzzer)
    lambda n: "a " * (n // 2),  # one-letter words: the spaced-out-letters join
    lambda n: "1" * n,  # digits: the phone pattern
    lambda n: "1 " * (n // 2),
    lambda n: "a." * (n // 2),  # dots: the link pattern
    lambda n: "@" + "a" * n,
    lambda n: "x" * n + "@",
    lambda n: "send " * (n // 5),
])
def test_hostile_long_viewer_text_is_screened_in_linear_time(make):
    """50,000 characters: a pattern that backtracks quadratically would run for an hour (pytest-timeout
    stops it); the guard must finish, and mask or pass the text like any other."""
    from bot.policy.guard import PolicyRuntime

    guard = PolicyRuntime(None)
    text = make(50_000)
    guard.clean(text)
    guard.moderate(chat(0, text, "v"), 0)


def test_a_rule_reading_the_leaderboard_or_variables_is_screened_in_full():
    """guard_context cleans the event's viewer values; the leaderboard's names (and variables a
    rule may fill from it) are not among them, so such rules' actions get the second scan."""
    rules = load_rules_text("""
rules:
  - id: g
    on: gift
    do:
      - set: { var: champ, value: "{{ leaderboard[0].nickname }}" }
  - id: top
    command: "!top"
    do:
      - say: "Top: {{ leaderboard | ranked(3) }}"
      - say: "Champion: {{ vars.champ }}"
""")
    actions = run_events([gift(1000, "Rose", 10, who=User("1", "u", "visit free-coins.com")),
                          chat(2000, "!top", "ana")], rules)
    assert [a.text for a in actions] == ["Top: 1. visit *** (10)", "Champion: visit ***"]
