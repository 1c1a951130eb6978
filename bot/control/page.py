"""The control page at ``/``: see what the bot does and why, and take control mid-stream.

Pushed live over a WebSocket (``/ws``): the event feed, the actions with their rule, the trace of
any event or action (``bot.engine.trace``, rendered only when clicked), the chat budget's queue
and counts, per-rule fired / suppressed counts, the sources' connection state. Controls (JSON
POSTs, see ``bot.control.guard``), each logged and kept across a restart (with the state's store,
else in memory only):

- ``POST /api/mute``  ``{"what": "all"|"chat"|"tts", "on": true|false}``: enforced in the
  dispatcher before the sinks (chat: nothing reaches the chat sink; tts: no ``tts`` action
  reaches a sink that speaks — every sink but the JSONL log and the console).
- ``POST /api/pause`` ``{"rule": ID, "paused": true|false}``: the engine skips it (traced as paused).
- ``POST /api/test``  a test event through the real path (the queue, the recorder, the engine):
  ``{"type": "gift", "user": NAME, "gift": NAME, "diamonds": N, "count": N, "streak": bool}``,
  ``follow``, ``share``, ``subscribe`` (``months``), ``chat`` (``text``), and the battle types
  when the event model has them. Marked ``test: true`` in the recording and in its actions, and
  left out of the session's figures, the leaderboard and lifetime totals (and so of the report).
- ``POST /api/poll``  ``{"action": "open", "question": TEXT, "options": [..], "duration": "1m"}``
  or ``{"action": "close"}``: a ``poll_control`` event through the queue (recorded; a replay
  opens and closes the same poll; ``bot.engine.pollcontrol``).

Bad input gets a 400 with the reason. Viewer text reaches the page as JSON data, and the page
shows it with ``textContent`` only.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, Sequence

import structlog
from aiohttp import WSMsgType, web

from bot.actions.model import Action
from bot.engine.budget import CHAT_KINDS
from bot.engine.pollcontrol import check_poll_control
from bot.engine.trace import FIRED, Tracer, event_view, full, outcomes
from bot.events.model import EVENT_TYPES, POLL_CONTROL, Event, User
from bot.sources.queue import stamp

log = structlog.get_logger("bot.control")
STATIC = Path(__file__).parent / "static"
QUIET_SINKS = frozenset({"jsonl", "console"})  # sinks that only log: they still get muted actions
PUSH_S = 0.25
FEED_SIZE = 200
TEST_TYPES = ("gift", "follow", "share", "chat", "subscribe", "battle_start", "battle_update", "battle_end")
MAX_TEXT = 300


_WHOLE = re.compile(r"-?[0-9]{1,12}")


class BadInput(ValueError):
    pass


def _str(body: dict, key: str, default: str | None = None, *, most: int = 100) -> str:
    value = body.get(key, default)
    if value is None:
        raise BadInput(f"'{key}' is required")
    if not isinstance(value, str):
        raise BadInput(f"'{key}' must be text")
    value = value.strip()
    if not value:
        raise BadInput(f"'{key}' must not be empty")
    if len(value) > most:
        raise BadInput(f"'{key}' is longer than {most} characters")
    return value


def _int(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):  # ASCII digits: "²".isdigit(), int("²") fails
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"'{key}' must be a whole number")
    if not low <= value <= high:
        raise BadInput(f"'{key}' must be from {low} to {high}")
    return value


def _bool(body: dict, key: str, default: bool | None = None) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadInput(f"'{key}' must be true or false")
    return value


class Control:
    def __init__(self, runner: Any, tracer: Tracer, *, store: Any = None, room: str = "") -> None:
        self.runner = runner
        self.tracer = tracer
        self.store = store
        self.key = f"{room or 'livebot'}#control"
        self.mute = {"chat": False, "tts": False}
        self.paused: set[str] = set()
        self.muted_counts: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=50)
        self.actions: deque[tuple[int, Action, list[str]]] = deque(maxlen=FEED_SIZE)
        self.events: deque[tuple[int, tuple]] = deque(maxlen=FEED_SIZE)
        self._ids = itertools.count(1)
        self._last_record: tuple | None = None
        self._sent_events = 0
        self._sent_actions = 0
        self._clients: set[web.WebSocketResponse] = set()
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._test_ids = itertools.count(1)
        self._load()
        tracer.attach(runner.engine)
        self.apply()
        runner.dispatcher.taps.append(self._on_actions)
        runner.dispatcher.mute = self._filter

    # -- settings, kept across a restart -------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {"mute": dict(self.mute), "paused": sorted(self.paused)}

    def _load(self) -> None:
        if self.store is None:
            return
        try:
            found = self.store.load_snapshot(self.key)
        except Exception as exc:  # a store that cannot be read leaves the defaults, said once
            log.warning("control_state_unreadable", error=f"{type(exc).__name__}: {exc}")
            return
        if found is None:
            return
        data = found[1]
        mute = data.get("mute") or {}
        self.mute = {k: bool(mute.get(k)) for k in ("chat", "tts")}
        self.paused = {str(r) for r in data.get("paused") or ()}
        log.info("control_state_loaded", **self.settings())

    def _save(self) -> None:
        if self.store is None:
            return
        try:
            self.store.save_snapshot(self.key, self.settings())
        except Exception as exc:
            log.warning("control_state_not_saved", error=f"{type(exc).__name__}: {exc}")

    def apply(self) -> None:
        """Put the settings into the engine in use (called again after it is replaced)."""
        engine = self.runner.engine
        if engine.tracer is not self.tracer:
            self.tracer.attach(engine)
        known = {r.id for r in engine.rules.rules}
        if engine.paused != frozenset(self.paused & known):
            engine.pause(self.paused & known)

    def _logged(self, what: str, **fields: Any) -> None:
        log.info("control", what=what, **fields)
        self.log.append({"ts": int(time.time() * 1000), "what": what, **fields})

    # -- the dispatcher's hooks -----------------------------------------------------------------

    def _filter(self, sink: str, actions: Sequence[Action]) -> Sequence[Action]:
        if not (self.mute["chat"] or self.mute["tts"]) or sink in QUIET_SINKS:
            return actions
        if sink == "chat" and self.mute["chat"]:
            self.muted_counts[sink] += len(actions)
            return []
        if self.mute["tts"]:
            kept = [a for a in actions if a.kind != "tts"]
            self.muted_counts[sink] += len(actions) - len(kept)
            return kept
        return actions

    def _on_actions(self, actions: Sequence[Action]) -> None:
        for a in actions:
            muted = []
            if self.mute["chat"] and a.kind in CHAT_KINDS:
                muted.append("chat")
            if self.mute["tts"] and a.kind == "tts":
                muted.append("tts")
            self.actions.append((next(self._ids), a, muted))

    # -- controls ----------------------------------------------------------------------------------

    def set_mute(self, what: str, on: bool) -> None:
        if what not in ("all", "chat", "tts"):
            raise BadInput("'what' must be all, chat or tts")
        for k in (("chat", "tts") if what == "all" else (what,)):
            self.mute[k] = on
        self._save()
        self._logged("mute" if on else "unmute", target=what)

    def set_paused(self, rule_id: str, paused: bool) -> None:
        if self.runner.engine.rules.get(rule_id) is None:
            raise BadInput(f"no rule '{rule_id}'")
        (self.paused.add if paused else self.paused.discard)(rule_id)
        self.apply()
        self._save()
        self._logged("pause" if paused else "resume", rule=rule_id)

    def test_event(self, body: dict) -> list[str]:
        kind = _str(body, "type")
        if kind not in TEST_TYPES or kind not in EVENT_TYPES:
            known = [t for t in TEST_TYPES if t in EVENT_TYPES]
            raise BadInput(f"'type' must be one of {', '.join(known)}")
        name = _str(body, "user", "tester", most=64)
        user = User(user_id=f"test:{name}", unique_id=name, nickname=name,
                    follow_role=1 if kind != "follow" else 0, is_subscriber=kind == "subscribe")
        n = next(self._test_ids)
        base = f"test-{int(time.time() * 1000)}-{n}"
        frames: list[dict[str, Any]] = []
        if kind == "gift":
            gift = _str(body, "gift", "Rose", most=64)
            diamonds = _int(body, "diamonds", 1, 1, 1_000_000)
            count = _int(body, "count", 1, 1, 10_000)
            streak = _bool(body, "streak", False)
            common = {"gift_id": 0, "name": gift, "diamonds": diamonds}
            if streak:  # a streak: its first frame, then its end
                if count > 1:
                    frames.append({**common, "count": 1, "gift_type": 1, "streak_end": False, "group_id": base})
                frames.append({**common, "count": count, "gift_type": 1, "streak_end": True, "group_id": base})
            else:
                frames.append({**common, "count": count, "gift_type": 2, "streak_end": False})
        elif kind == "chat":
            frames.append({"text": _str(body, "text", most=MAX_TEXT)})
        elif kind == "subscribe":
            frames.append({"months": _int(body, "months", 1, 1, 1200)})
        elif kind.startswith("battle"):
            frames.append({k: v for k, v in body.items() if k not in ("type", "user") and len(k) <= 40
                           and (isinstance(v, (int, float, bool)) or isinstance(v, str) and len(v) <= 100)})
        else:
            frames.append({})
        ids = []
        for i, data in enumerate(frames):
            data["test"] = True
            ev = Event(kind, int(time.time() * 1000), "", f"{base}-{i}", user, data)
            stamp(self.runner.queue, self.runner.clock, ev)
            ids.append(ev.msg_id)
        self._logged("test_event", type=kind, user=name, msg_ids=ids)
        return ids

    def poll(self, body: dict) -> dict[str, Any]:
        """Open or close a poll: a ``poll_control`` event through the queue (recorded, so a replay
        opens and closes the same poll; the engine does it in order with the other events)."""
        try:
            data = check_poll_control(body)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        engine = self.runner.engine
        if data["op"] == "open" and engine.poll is not None:
            raise BadInput(f"a poll is open already (rule {engine.poll.rule.id}); close it first")
        if data["op"] == "close" and engine.poll is None:
            raise BadInput("no poll is open")
        now = self.runner.clock.now()
        ev = Event(POLL_CONTROL, now, msg_id=f"poll:{data['op']}:{now}:{next(self._test_ids)}", data=data)
        stamp(self.runner.queue, self.runner.clock, ev)
        if data["op"] == "open":
            self._logged("poll_open", question=data["question"], options=len(data["options"]),
                         duration_ms=data["duration_ms"])
        else:
            self._logged("poll_close")
        return {"queued": data["op"], "msg_id": ev.msg_id}

    # -- what the page shows -----------------------------------------------------------------------

    def _collect(self) -> None:
        """New trace records since the last look (the ring buffer's newest first, back to the last seen)."""
        new = []
        for record in reversed(self.tracer.records):
            if record is self._last_record:
                break
            new.append(record)
        if new:
            self._last_record = new[0]
            for record in reversed(new):
                self.events.append((next(self._ids), full(record)))

    def event_item(self, n: int, record: tuple) -> dict[str, Any]:
        kind, now, ev, _rules, entries, _paused = record
        fired = [e[0].id for e in entries or () if e[1] == FIRED]
        item: dict[str, Any] = {"id": n, "kind": kind, "ts": now, "fired": fired}
        if ev is not None:
            item["event"] = event_view(ev)
        elif entries:
            item["rule"] = entries[0][0].id
            item["outcome"] = entries[0][1]
        return item

    @staticmethod
    def action_item(n: int, a: Action, muted: list[str]) -> dict[str, Any]:
        return {"id": n, "ts": a.ts, "kind": a.kind, "rule": a.rule, "text": a.text, "user": a.user,
                "event_id": a.event_id, "test": bool(a.data.get("test")), "muted": muted}

    def counts(self) -> dict[str, Any]:
        engine = self.runner.engine
        rules: dict[str, Any] = {}
        for r in engine.rules.rules:
            rules[r.id] = {"fired": engine.fired.get(r.id, 0), "suppressed": {}, "paused": r.id in self.paused,
                           "on": sorted(r.on) or (["timer"] if r.is_timer else [])}
        for (rid, reason), n in engine.suppressed.items():
            if rid in rules:
                rules[rid]["suppressed"][reason] = n
        return rules

    def policy(self) -> dict[str, Any]:
        """What the policy guard did (process totals), and its latest suppressions: the rule, the
        kind and what was found — never the viewer's words (bot.policy)."""
        r = self.runner
        counts = getattr(r, "counts", None)
        totals: dict[str, dict[str, int]] = {"masked": {}, "suppressed": {}, "moderation": {}}
        if counts is not None:
            for (outcome, name), n in counts.policy(r.engine).items():
                totals.setdefault(outcome, {})[name] = n
        recent = [{"ts": a.get("ts"), "rule": a.get("rule"), "kind": a.get("kind"),
                   "found": [f"{e.get('check')} in {e.get('field')}" for e in (a.get("data") or {}).get("policy", ())]}
                  for a in list(getattr(r.engine.policy, "suppressed", ()))[-20:]]
        return {**totals, "recent": recent[::-1]}

    def budget(self) -> dict[str, Any]:
        b = self.runner.engine.budget
        waiting = sorted(b._queue)
        return {"per_minute": b.per_minute, "counters": dict(b.counters), "waiting": [
            {"rule": w.action.rule, "text": w.action.text, "since": w.action.ts, "worth": -w.sort_key[0]}
            for w in waiting[:50]]}

    def state(self) -> dict[str, Any]:
        r = self.runner
        poll = r.engine.poll
        return {
            "settings": self.settings(),
            "sources": {name: ("connected" if up else "disconnected") for name, up in r.connected.items()},
            "queue": len(r.queue),
            "rules": self.counts(),
            "budget": self.budget(),
            "policy": self.policy(),
            "muted": dict(self.muted_counts),
            "log": list(self.log)[-20:],
            "poll": None if poll is None else {"rule": poll.rule.id, "question": poll.question,
                                                "options": poll.options, "ends": poll.ends},
            "test_types": [t for t in TEST_TYPES if t in EVENT_TYPES],
        }

    def update(self, everything: bool = False) -> dict[str, Any]:
        self.apply()
        self._collect()
        events = list(self.events) if everything else [e for e in self.events if e[0] > self._sent_events]
        actions = list(self.actions) if everything else [a for a in self.actions if a[0] > self._sent_actions]
        return {"type": "snapshot" if everything else "update",
                "events": [self.event_item(n, rec) for n, rec in events],
                "actions": [self.action_item(n, a, m) for n, a, m in actions],
                "state": self.state()}

    def trace_of(self, kind: str, n: int) -> dict[str, Any] | None:
        self._collect()
        if kind == "event":
            record = next((rec for i, rec in self.events if i == n), None)
            return None if record is None else self.tracer.render(record)
        found = next(((a, m) for i, a, m in self.actions if i == n), None)
        if found is None:
            return None
        action, muted = found
        record = None
        if action.event_id:
            record = next((rec for _, rec in reversed(self.events) if rec[2] is not None
                           and rec[2].msg_id == action.event_id), None)
        if record is None:  # a timer's, a merged line's, a poll's: the latest record where its rule acted
            for _, rec in reversed(self.events):
                if rec[1] <= action.ts and any(e[0].id == action.rule for e in outcomes(rec) if e[1] != "trigger"):
                    record = rec
                    break
        out: dict[str, Any] = {"action": self.action_item(n, action, muted), "rule": action.rule}
        if record is not None:
            out.update(self.tracer.render(record))
        out["budget"] = self.tracer.render_action(action)["budget"]
        return out

    # -- HTTP ------------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/control.js", self.script)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/api/state", self.api_state)
        app.router.add_get("/api/trace", self.api_trace)
        app.router.add_post("/api/mute", self.api_mute)
        app.router.add_post("/api/pause", self.api_pause)
        app.router.add_post("/api/test", self.api_test)
        app.router.add_post("/api/poll", self.api_poll)

    async def page(self, request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "control.html", headers=_NO_STORE)  # type: ignore[return-value]

    async def script(self, request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "control.js", headers=_NO_STORE)  # type: ignore[return-value]

    async def api_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.update(everything=True))

    async def api_trace(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind", "event")
        try:
            n = int(request.query.get("id", ""))
        except ValueError:
            return web.json_response({"error": "'id' must be a number"}, status=400)
        if kind not in ("event", "action"):
            return web.json_response({"error": "'kind' must be event or action"}, status=400)
        found = self.trace_of(kind, n)
        if found is None:
            return web.json_response({"error": f"no {kind} {n} in the last {FEED_SIZE}"}, status=404)
        return web.json_response(found)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except Exception:
            raise BadInput("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadInput("the body must be a JSON object")
        return body

    async def _control(self, request: web.Request, do) -> web.Response:
        try:
            body = await self._body(request)
            result = do(body)
            if asyncio.iscoroutine(result):
                result = await result
        except BadInput as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._kick()
        return web.json_response({"ok": True, **(result or {}), "settings": self.settings()})

    async def api_mute(self, request: web.Request) -> web.Response:
        return await self._control(request, lambda b: self.set_mute(_str(b, "what"), _bool(b, "on")))

    async def api_pause(self, request: web.Request) -> web.Response:
        return await self._control(request, lambda b: self.set_paused(_str(b, "rule"), _bool(b, "paused")))

    async def api_test(self, request: web.Request) -> web.Response:
        return await self._control(request, lambda b: {"msg_ids": self.test_event(b)})

    async def api_poll(self, request: web.Request) -> web.Response:
        return await self._control(request, self.poll)

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        await ws.send_json(self.update(everything=True))
        self._clients.add(ws)
        try:
            async for msg in ws:  # the page only listens; anything it sends is ignored
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.discard(ws)
        return ws

    # -- pushing ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._push_loop(), name="control-push")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for ws in list(self._clients):
            await ws.close()

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _push_loop(self) -> None:
        last_state = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), PUSH_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self.apply()
            if not self._clients:
                self._collect()
                self._sent_events = self.events[-1][0] if self.events else 0
                self._sent_actions = self.actions[-1][0] if self.actions else 0
                continue
            msg = self.update()
            now = time.monotonic()
            if not msg["events"] and not msg["actions"] and now - last_state < 1.0:
                continue
            last_state = now
            if msg["events"]:
                self._sent_events = msg["events"][-1]["id"]
            if msg["actions"]:
                self._sent_actions = msg["actions"][-1]["id"]
            for ws in list(self._clients):
                try:
                    await ws.send_json(msg)
                except (ConnectionError, RuntimeError):
                    self._clients.discard(ws)


_NO_STORE = {"Cache-Control": "no-store"}
