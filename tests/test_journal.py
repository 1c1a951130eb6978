"""The delivery journal and the catch-up at start: a restart after a crash thanks nobody twice.

The crash itself (a SIGKILL of ``livebot run`` while gifts flow) is in ``test_faults.py -k sigkill``;
these tests pin the parts down: what the journal keeps and forgets, that each sink is judged by
what *it* delivered, and that the runner feeds the engine what the recording holds past the saved
snapshot.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import pytest

import bot.live
from bot.actions.dispatcher import LiveDispatcher
from bot.actions.journal import DeliveryJournal
from bot.actions.model import Action
from bot.clock import VirtualClock
from bot.engine.core import Engine
from bot.engine.loader import load_rules_text
from bot.live import LiveRunner
from bot.sources.recorder import Recorder
from bot.store.keeper import StateKeeper
from bot.store.sqlite import SqliteStore
from bot.testing import CaptureSink, ScriptSource, gift

GUARD = 30.0  # seconds: a hang guard, never a measurement
T0 = 1_763_665_200_000

RULES = """
rules:
  - id: thanks
    on: gift
    do: [{say: "thanks {{ user.nickname }} ({{ user.diamonds }})"}, {alert: "{{ user.nickname }}"}]
"""


def say(event_id: str | None, rule: str = "thanks", kind: str = "say") -> Action:
    return Action(T0, kind, f"thanks {event_id}", rule, "u", event_id)


# -- the journal ---------------------------------------------------------------------------------

def test_what_a_sink_delivered_is_known_after_a_restart_for_that_sink_only(tmp_path):
    path = tmp_path / "state.db.delivered"
    j = DeliveryJournal(path)
    assert j.resuming == 0 and not j.already_delivered("jsonl", say("m1"))
    j.delivered("jsonl", [say("m1"), say("m2"), say(None)])  # (an action of no event: known by time and text)
    j.delivered("overlay", [say("m1", kind="alert")])
    j.close()

    again = DeliveryJournal(path)
    assert again.resuming == 4
    assert again.already_delivered("jsonl", say("m1")) and again.already_delivered("jsonl", say("m2"))
    assert not again.already_delivered("jsonl", say("m3"))
    assert not again.already_delivered("jsonl", say("m1", rule="other"))  # another rule's action
    assert again.already_delivered("jsonl", say(None))
    later = say(None)
    later.ts += 600_000  # the same reminder ten minutes on: another action
    assert not again.already_delivered("jsonl", later)
    other_words = say(None)
    other_words.text = "thanks A, B and C"
    assert not again.already_delivered("jsonl", other_words)
    assert again.already_delivered("overlay", say("m1", kind="alert"))
    assert not again.already_delivered("overlay", say("m1"))  # the overlay never had the say
    assert not again.already_delivered("webhook", say("m1"))  # nor the webhook anything
    assert again.suppressed == 4


def test_a_line_cut_by_a_kill_is_skipped_and_the_next_write_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "j"
    j = DeliveryJournal(path)
    j.delivered("jsonl", [say("m1")])
    j.close()
    with open(path, "ab") as f:
        f.write(b'["jsonl","m2","tha')  # the write the kill cut
    again = DeliveryJournal(path)
    assert again.skipped_lines == 1 and again.already_delivered("jsonl", say("m1"))
    assert not again.already_delivered("jsonl", say("m2"))  # not known delivered: sent (once) again
    again.delivered("jsonl", [say("m3")])
    again.close()
    third = DeliveryJournal(path)
    assert third.skipped_lines == 1
    assert third.already_delivered("jsonl", say("m3")) and third.already_delivered("jsonl", say("m1"))


def test_rotation_keeps_what_was_delivered_since_the_save_before_last(tmp_path):
    path = tmp_path / "j"
    j = DeliveryJournal(path)
    j.delivered("jsonl", [say("a")])
    j.rotate()  # save 1
    j.delivered("jsonl", [say("b")])
    j.rotate()  # save 2: "a" is two saves old, forgotten
    j.delivered("jsonl", [say("c")])
    j.close()
    again = DeliveryJournal(path)
    assert [again.already_delivered("jsonl", say(x)) for x in "abc"] == [False, True, True]


def test_a_journal_past_its_size_limit_rotates_by_itself(tmp_path):
    path = tmp_path / "j"
    j = DeliveryJournal(path, max_bytes=2_000)
    for i in range(200):
        j.delivered("jsonl", [say(f"m{i}")])
    j.close()
    assert path.stat().st_size <= 2_100 and j.previous.stat().st_size <= 2_100
    again = DeliveryJournal(path)
    assert again.already_delivered("jsonl", say("m199"))
    assert not again.already_delivered("jsonl", say("m0"))


def test_a_journal_that_cannot_be_opened_is_counted_and_never_raises(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    j = DeliveryJournal(tmp_path / "a-file" / "j")  # (its folder is a file: even root cannot)
    j.delivered("jsonl", [say("m1")])
    j.rotate()
    assert j.failures >= 2 and j.written == 0 and j.resuming == 0
    j.close()


def test_a_journal_on_a_full_disk_is_counted_and_never_raises(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    j = DeliveryJournal(tmp_path / "j")
    os.close(j._fd)  # type: ignore[arg-type]
    j._fd = os.open("/dev/full", os.O_WRONLY)
    j.delivered("jsonl", [say("m1"), say("m2")])
    assert j.failures == 1 and j.written == 0
    j.close()


# -- the dispatcher with a journal ---------------------------------------------------------------

class Named(CaptureSink):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


async def test_each_sink_is_sent_only_what_it_did_not_deliver_before_the_restart(tmp_path):
    path = tmp_path / "j"
    first = DeliveryJournal(path)
    async with LiveDispatcher([Named("jsonl"), Named("overlay")], journal=first) as d:
        # the overlay delivered m1 only; the jsonl sink m1 and m2 (the kill came in between)
        await d.dispatch([say("m1")])
        await asyncio.sleep(0.05)
        d.lanes["overlay"].sink.send = _never  # type: ignore[method-assign]
        await d.dispatch([say("m2")])
        await asyncio.sleep(0.05)
    assert first.written == 3

    jsonl, overlay = Named("jsonl"), Named("overlay")
    async with LiveDispatcher([jsonl, overlay], journal=DeliveryJournal(path), drain_timeout=2) as d:
        await d.dispatch([say("m1"), say("m2"), say("m3"), say(None)])
    assert [a.event_id for a in jsonl.actions] == ["m3", None]
    assert [a.event_id for a in overlay.actions] == ["m2", "m3", None]
    assert d.stats["jsonl"].already_delivered == 2 and d.stats["overlay"].already_delivered == 1
    assert d.stats["jsonl"].dispatched == d.stats["jsonl"].sent == 2


async def _never(actions) -> None:
    await asyncio.Event().wait()


# -- the runner: catching up from the recording at start -----------------------------------------

async def until(check, what: str) -> None:
    for _ in range(int(GUARD / 0.005)):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fast_loop(monkeypatch):
    monkeypatch.setattr(bot.live, "IDLE_WAKE_S", 0.01)


def gifts(lo: int, hi: int):
    return [gift(0, "Rose", 1, who=f"v{i % 3}", msg_id=f"g{i}") for i in range(lo, hi)]


async def test_a_restart_resends_what_the_sinks_had_not_delivered_and_thanks_nobody_twice(tmp_path, fast_loop):
    """A process handles g0..g29 and dies (no save at its end). Its overlay stalled after g9: the
    state save (after g10) covers g10 while the overlay still had g10's actions queued. The next
    process resumes the snapshot, gives the overlay g10's actions again, feeds g11..g29 from the
    recording, then takes the source's backlog g10..g29 and a new g30. Every viewer's total
    counts all 31 gifts; the JSONL sink (which wrote g0..g29 before the kill) gets g30 alone; the
    overlay g10..g30, each once."""
    rules = load_rules_text(RULES)
    clock = VirtualClock(T0)
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room", every_ms=60_000)
    journal = DeliveryJournal(tmp_path / "state.db.delivered")
    keeper.on_saved.append(journal.rotate)
    jsonl, overlay = Named("jsonl"), Named("overlay")
    dispatcher = LiveDispatcher([jsonl, overlay], journal=journal, drain_timeout=0.2)
    recorder = Recorder(tmp_path / "sessions", room="room", flush_every_s=0.0)
    runner = LiveRunner([src := ScriptSource()], Engine(rules), dispatcher, keeper=keeper, recorder=recorder, clock=clock)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(src.ready.wait(), GUARD)
    for ev in gifts(0, 10):
        src.put(ev)
    await until(lambda: len(overlay.actions) == 20, "g0..g9 delivered")
    overlay.send = _never  # type: ignore[method-assign]
    clock.advance(60_000)
    src.put(gifts(10, 11)[0])  # the save falls due with this batch: it covers g0..g10
    await until(lambda: keeper.saves == 2, "a save")  # (the first: when the recording's file opened)
    for ev in gifts(11, 30):
        src.put(ev)
    await until(lambda: len(jsonl.actions) == 60, "g0..g29 written")
    runner.keeper = None  # the process dies: no save at its end
    src.done.set()
    await asyncio.wait_for(task, GUARD)
    await dispatcher.close()
    store.close()
    assert [a.event_id for a in jsonl.actions if a.kind == "say"] == [f"g{i}" for i in range(30)]

    # The restart.
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room", every_ms=60_000)
    journal = DeliveryJournal(tmp_path / "state.db.delivered")
    jsonl, overlay = Named("jsonl"), Named("overlay")
    dispatcher = LiveDispatcher([jsonl, overlay], journal=journal)
    runner = LiveRunner([src := ScriptSource()], Engine(rules), dispatcher, keeper=keeper,
                        recorder=Recorder(tmp_path / "sessions", room="room"), clock=clock)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(src.ready.wait(), GUARD)
    assert keeper.resume_recording is not None and runner.caught_up == 19 + 1  # g11..g29 and the shutdown line
    assert {name: [a["event_id"] for a in left] for name, left in keeper.resume_pending.items()} == \
        {"overlay": ["g10", "g10"]}  # its say and its alert
    for ev in gifts(10, 31):  # the backlog, then one new gift
        src.put(ev)
    await until(lambda: any(a.event_id == "g30" for a in overlay.actions), "g30 delivered")
    src.done.set()
    await asyncio.wait_for(task, GUARD)
    await dispatcher.close()
    store.close()

    assert [(a.event_id, a.kind) for a in jsonl.actions] == [("g30", "say"), ("g30", "alert")]
    assert [a.event_id for a in overlay.actions if a.kind == "alert"] == [f"g{i}" for i in range(10, 31)]
    assert [a.event_id for a in overlay.actions if a.kind == "say"] == [f"g{i}" for i in range(10, 31)]
    st = runner.engine.state
    assert st.diamonds == 31 and sum(v.diamonds for v in st.viewers_by_key.values()) == 31
    assert runner.engine.counters["duplicates"] == 20  # the backlog g10..g29: all known
    assert jsonl.actions[0].text == "thanks v0 (11)"  # g30 is v0's 11th gift (g0, g3, ..., g30)
    assert dispatcher.stats["jsonl"].already_delivered == 19 * 2  # g11..g29, fed again from the recording


async def test_a_clean_stop_then_a_start_sends_nothing_again(tmp_path, fast_loop):
    """SIGTERM's drain saves the state last: the next start has nothing to catch up or resend."""
    rules = load_rules_text(RULES)
    clock = VirtualClock(T0)
    for run in range(2):
        store = SqliteStore(tmp_path / "state.db")
        keeper = StateKeeper(store, "room")
        journal = DeliveryJournal(tmp_path / "state.db.delivered")
        keeper.on_saved.append(journal.rotate)
        sink = Named("jsonl")
        dispatcher = LiveDispatcher([sink], journal=journal)
        runner = LiveRunner([src := ScriptSource()], Engine(rules), dispatcher, keeper=keeper,
                            recorder=Recorder(tmp_path / "sessions", room="room"), clock=clock)
        task = asyncio.create_task(runner.run())
        await asyncio.wait_for(src.ready.wait(), GUARD)
        for ev in gifts(run * 10, run * 10 + 10):
            src.put(ev)
        await until(lambda: len(sink.actions) == 20, "ten gifts thanked")
        src.done.set()
        await asyncio.wait_for(task, GUARD)
        await dispatcher.close()
        store.close()
        assert runner.caught_up == 0 and keeper.resume_pending == {}
        assert [a.event_id for a in sink.actions if a.kind == "say"] == [f"g{i}" for i in range(run * 10, run * 10 + 10)]
    assert runner.engine.state.diamonds == 20


def test_a_resumed_recording_goes_on_in_the_same_file_after_a_cut_line(tmp_path):
    from bot.events.model import Event
    from bot.sources.replay import ReplaySource

    folder = tmp_path / "sessions"
    first = Recorder(folder, room="room")
    first.write(Event("chat", T0, msg_id="c1", data={"text": "hi"}))
    first.close()
    [path] = folder.iterdir()
    with open(path, "ab") as f:
        f.write(b'{"type":"chat","ts":17')  # the write a kill cut
    again = Recorder(folder, room="room")
    assert not again.resume(tmp_path / "elsewhere.jsonl")  # not a recording of this folder
    assert not again.resume(tmp_path / "state.db")
    assert again.resume(path)
    again.write(Event("chat", T0 + 1000, msg_id="c2", data={"text": "back"}))
    again.close()
    assert list(folder.iterdir()) == [path] and again.files == [path]
    src = ReplaySource(path)
    assert [e.msg_id for e in src.events()] == ["c1", "c2"] and src.malformed == 1


async def _one_run(tmp_path, clock, gifts_, *, blocked: bool, dead_letter, kill: bool, resume_within_ms=30 * 60_000):
    """One process of the daemon's shape: a sink named webhook (stalled if ``blocked``), state,
    journal and recording. ``kill``: no save at the end and no dead-lettering at close."""
    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room", every_ms=1000, resume_within_ms=resume_within_ms)
    journal = DeliveryJournal(tmp_path / "state.db.delivered")
    keeper.on_saved.append(journal.rotate)
    sink = Named("webhook")
    if blocked:
        sink.send = _never  # type: ignore[method-assign]
    dispatcher = LiveDispatcher([sink], journal=journal, dead_letter=dead_letter, drain_timeout=0.1)
    runner = LiveRunner([src := ScriptSource()], Engine(load_rules_text(RULES)), dispatcher, keeper=keeper,
                        recorder=Recorder(tmp_path / "sessions", room="room"), clock=clock)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(src.ready.wait(), GUARD)
    for ev in gifts_:
        src.put(ev)
    clock.advance(1000)
    saves = keeper.saves
    src.put(gift(0, "Rose", 1, who="v9", msg_id=f"late{len(gifts_)}"))
    await until(lambda: keeper.saves > saves, "a save with the sink's queue full")
    if kill:
        runner.keeper = None
    src.done.set()
    await asyncio.wait_for(task, GUARD)
    if kill:  # the workers die with the process: nothing is dead-lettered or journaled at a close
        tasks = list(dispatcher._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        journal.close()
    else:
        await dispatcher.close()
        runner.save_after_dispatch()
    store.close()
    return runner, keeper, sink


async def test_a_clean_stop_leaves_what_a_stalled_sink_missed_in_the_dead_letter_file_only(tmp_path, fast_loop):
    """SIGTERM with a webhook down: its queued actions are dead-lettered (for `livebot resend`);
    the next start does not send them as well."""
    clock = VirtualClock(T0)
    dead = tmp_path / "dead.jsonl"
    await _one_run(tmp_path, clock, gifts(0, 5), blocked=True, dead_letter=dead, kill=False)
    lines = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert {x["reason"] for x in lines} == {"shutdown"} and len(lines) == 12  # g0..g4 and late5: say + alert
    runner, keeper, sink = await _one_run(tmp_path, clock, gifts(5, 6), blocked=False, dead_letter=dead, kill=False)
    assert keeper.resume_pending == {} and runner.caught_up == 0
    assert {a.event_id for a in sink.actions} == {"g5", "late1"}  # nothing of the first run's


async def test_what_a_killed_process_had_pending_is_dead_lettered_when_its_stream_is_over(tmp_path, fast_loop):
    clock = VirtualClock(T0)
    dead = tmp_path / "dead.jsonl"
    await _one_run(tmp_path, clock, gifts(0, 5), blocked=True, dead_letter=dead, kill=True)
    assert not dead.exists()
    clock.advance(3_600_000)  # back an hour later: the stream is over
    runner, keeper, sink = await _one_run(tmp_path, clock, [], blocked=False, dead_letter=dead, kill=False,
                                          resume_within_ms=60_000)
    lines = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert keeper.resume_pending == {} and {x["reason"] for x in lines} == {"stale"}
    assert sorted({x["action"]["event_id"] for x in lines}) == ["g0", "g1", "g2", "g3", "g4", "late5"]
    assert [a.event_id for a in sink.actions] == ["late0", "late0"]  # only the new stream's gift


async def test_a_stream_that_ended_after_the_last_save_ends_at_the_catch_up_and_the_next_gets_a_new_file(
        tmp_path, fast_loop):
    from bot.events.model import LIVE_END, Event

    rules = load_rules_text(RULES)
    clock = VirtualClock(T0)
    ended: list = []

    def process(store):
        keeper = StateKeeper(store, "room", every_ms=60_000)
        sink = Named("jsonl")
        runner = LiveRunner([src := ScriptSource()], Engine(rules), LiveDispatcher([sink]), keeper=keeper,
                            recorder=Recorder(tmp_path / "sessions", room="room"), clock=clock,
                            on_stream_end=ended.append)
        return runner, src, keeper, sink

    store = SqliteStore(tmp_path / "state.db")
    runner, src, keeper, sink = process(store)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(src.ready.wait(), GUARD)
    for ev in gifts(0, 3):
        src.put(ev)
    await until(lambda: len(sink.actions) == 6 and keeper.saves == 1, "g0..g2 and the save at the file's opening")
    runner.keeper = None  # from here on nothing is saved: as if killed right after the live_end
    src.put(Event(LIVE_END, 0, msg_id="end"))
    await until(lambda: ended, "the stream's end")
    src.done.set()
    await asyncio.wait_for(task, GUARD)
    await runner.dispatcher.close()
    [first] = ended
    ended.clear()

    runner, src, keeper, sink = process(store)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(src.ready.wait(), GUARD)
    assert ended == [first]  # ended again, at the catch-up, with its own file (for its report)
    assert store.sessions("room")[0]["diamonds"] == 3  # and folded in: g0..g2
    src.put(gift(0, "Rose", 5, who="v1", msg_id="next"))
    await until(lambda: len(sink.actions) == 2, "the next stream's gift")
    src.done.set()
    await asyncio.wait_for(task, GUARD)
    await runner.dispatcher.close()
    store.close()
    files = sorted((tmp_path / "sessions").iterdir())
    assert len(files) == 2 and first in files  # the next stream has a file of its own
    assert runner.engine.state.diamonds == 5


async def test_a_damaged_recording_entry_or_journal_never_stops_the_bot(tmp_path, fast_loop):
    """A snapshot whose recording entry is nonsense (a NUL in the path, an offset past any file,
    a device) is started from all the same: logged, no catch-up; a journal that cannot be opened
    is tried again at most every few seconds and logged a few times, not at every batch."""
    from structlog.testing import capture_logs

    store = SqliteStore(tmp_path / "state.db")
    engine = Engine(load_rules_text(RULES))
    engine.feed(gift(T0, "Rose", 1, who="v0", msg_id="g0"), T0)
    keeper = StateKeeper(store, "room")
    for recording in (["bad\0path", 10], ["x", 2**63], ["/dev/zero", 0], [str(tmp_path / "gone.jsonl"), 5]):
        keeper.save(engine, T0, {"recording": recording})
        (tmp_path / "a-file").write_text("")
        journal = DeliveryJournal(tmp_path / "a-file" / "j")
        runner = LiveRunner([src := ScriptSource()], Engine(load_rules_text(RULES)),
                            LiveDispatcher([sink := Named("jsonl")], journal=journal),
                            keeper=StateKeeper(store, "room"), recorder=Recorder(tmp_path / "sessions", room="room"),
                            clock=VirtualClock(T0 + 1000))
        with capture_logs() as logs:
            task = asyncio.create_task(runner.run())
            await asyncio.wait_for(src.ready.wait(), GUARD)
            for ev in gifts(1, 40):
                src.put(ev)
            await until(lambda: len(sink.actions) == 78, "the gifts thanked")
            src.done.set()
            await asyncio.wait_for(task, GUARD)
            await runner.dispatcher.close()
        assert runner.caught_up == 0 and runner.engine.state.diamonds >= 40
        assert sum(e["event"] == "journal_open_failed" for e in logs) <= 5 and journal.failures >= 2
    store.close()


async def test_a_stream_stopped_mid_streak_and_restarted_too_late_counts_the_streak_and_keeps_its_thanks(
        tmp_path, fast_loop):
    """SIGTERM while ana's combo is open (the streak stays open in the state, for a restart), and
    the bot comes back the next day: the combo is counted in her lifetime totals, and its
    thank-you, too late to say, is in the dead-letter file (reason stale), not lost."""
    clock = VirtualClock(T0)
    dead = tmp_path / "dead.jsonl"
    combo = [gift(0, "Rose", 1, count=n, who="ana", gift_type=1, msg_id=f"s{n}") for n in range(1, 6)]
    await _one_run(tmp_path, clock, combo, blocked=False, dead_letter=dead, kill=False)
    clock.advance(24 * 3_600_000)
    await _one_run(tmp_path, clock, [], blocked=False, dead_letter=dead, kill=False, resume_within_ms=60_000)
    lines = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    stale = [x["action"] for x in lines if x["reason"] == "stale" and x["action"]["user"] == "ana"]
    assert [a["text"] for a in stale if a["kind"] == "say"] == ["thanks ana (5)"]
    store = SqliteStore(tmp_path / "state.db")
    assert store.lifetime()["id-ana"]["diamonds"] == 5
    store.close()


async def test_with_no_dead_letter_file_a_clean_stop_leaves_the_undelivered_for_the_restart(tmp_path, fast_loop):
    """`sinks.dead_letter: null` (the default): a webhook's queue at SIGTERM is only logged, so the
    restart sends it — and nothing of it twice."""
    clock = VirtualClock(T0)
    await _one_run(tmp_path, clock, gifts(0, 5), blocked=True, dead_letter=None, kill=False)
    runner, keeper, sink = await _one_run(tmp_path, clock, [], blocked=False, dead_letter=None, kill=False)
    assert [a.event_id for a in sink.actions if a.kind == "say"] == ["g0", "g1", "g2", "g3", "g4", "late5", "late0"]


async def test_a_stop_after_the_stream_ended_saves_no_stream(tmp_path, fast_loop):
    from bot.events.model import LIVE_END, Event

    store = SqliteStore(tmp_path / "state.db")
    keeper = StateKeeper(store, "room")
    runner = LiveRunner([src := ScriptSource()], Engine(load_rules_text(RULES)), LiveDispatcher([Named("jsonl")]),
                        keeper=keeper, recorder=Recorder(tmp_path / "sessions", room="room"),
                        clock=VirtualClock(T0))
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(src.ready.wait(), GUARD)
    for ev in gifts(0, 3):
        src.put(ev)
    src.put(Event(LIVE_END, 0, msg_id="end"))
    await until(lambda: runner.engine.state.started is None and store.sessions("room"), "the stream's end")
    src.done.set()
    await asyncio.wait_for(task, GUARD)
    await runner.dispatcher.close()
    runner.save_after_dispatch()
    assert store.load_snapshot("room") is None  # no phantom stream for the next start to resume
    assert len(list((tmp_path / "sessions").iterdir())) == 1
    store.close()
