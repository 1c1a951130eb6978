"""A seeded simulator of a small creator's TikTok LIVE, in TikFinity's flat wire format.

    python bench/sessiongen.py --minutes 25 --seed 7 --malformed -o examples/demo-session.jsonl
    python bench/sessiongen.py --events 1000000 --seed 1 -o bench/data/session.jsonl

Each line is ``{"event": ..., "data": {...}}`` as TikFinity's local WebSocket and
TikTok-Live-Connector v1 send it (camelCase fields, ``createTime`` in ms as a string). It has what
real rooms have: a Zipf-like audience (few chatty viewers, many lurkers, a few loyal gifters),
bursts and lulls, gift streaks with progress frames (about 3% lose their end frame), a reconnect
that replays a backlog of lines with the same ``msgId``, hostile and non-Latin nicknames, and
optionally two broken lines. The same seed always gives the same bytes.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from datetime import datetime
from typing import Iterator

import orjson

from genout import iso_to_ms, write_lines

DEFAULT_START = "2026-11-20T19:00:00+00:00"

# name, id, diamonds per unit, type (1 = streakable), weight
GIFTS = [("Rose", 5655, 1, 1, 40), ("TikTok", 5269, 1, 1, 15), ("Ice Cream Cone", 5827, 1, 1, 12),
         ("Finger Heart", 5487, 5, 1, 14), ("Doughnut", 5879, 30, 1, 6), ("Hand Hearts", 5660, 100, 2, 4),
         ("Corgi", 6267, 299, 2, 3), ("Galaxy", 11046, 1000, 2, 1.2), ("Lion", 6369, 29999, 2, 0.08),
         ("Universe", 7934, 34999, 2, 0.03)]
NAMES = ["Ana", "Bruno", "Chloé", "Dev", "Emi", "Farah", "Gus", "Hana", "Iker", "Jo", "Kofi", "Lena", "Mateo",
         "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tariq", "Uma", "Vik", "Wen", "Xavi", "Yara", "Zoe"]
EXOTIC = ["🌸 sakura 🌸", "محمد", "שרה", "李雷", "Ñoño ✨", "ᴅᴀʀᴋ ʟᴏʀᴅ", "😂😂😂", "Zalgo̴ ̷t̶e̷x̸t̴"]
HOSTILE = ["{{7*7}}", "<img src=x onerror=alert(1)>", "{% for x in y %}", "'; DROP TABLE users;--"]
CHAT = ["hi!!", "hello from Brazil 🇧🇷", "love this", "lol", "😂", "what game is this?", "first time here",
        "hola", "bonjour", "this is so good", "❤️❤️❤️", "W stream", "how long have you been live?", "gg",
        "can you say hi to me?", "where are you from?", "nice", "ok", "same", "haha", "🔥🔥", "let's go",
        "¿de dónde eres?", "sub when?", "is this live?", "1", "2", "mars"]
COMMANDS = ["!help", "!socials", "!HELP", "!socials please", "!top", "!commands", "!vip"]
FOLLOW = "pm_main_follow_message_viewer_2"
SHARE = "pm_mt_guidance_share"


class _Viewer:
    __slots__ = ("user_id", "unique_id", "nickname", "chat_weight", "gift_weight", "follows", "sub", "mod", "level")

    def __init__(self, rng: random.Random, i: int) -> None:
        r = rng.random()
        if r < 0.02:
            nick = rng.choice(HOSTILE)
        elif r < 0.12:
            nick = rng.choice(EXOTIC)
        else:
            nick = f"{rng.choice(NAMES)}{rng.choice(['', '_', '.', ''])}{rng.randint(1, 999) if rng.random() < 0.6 else ''}"
        self.user_id = str(6_800_000_000_000_000_000 + i * 7919)
        self.unique_id = f"user{i:05d}" if rng.random() < 0.7 else f"{NAMES[i % len(NAMES)].lower()}.{i}"
        self.nickname = nick
        self.chat_weight = rng.paretovariate(1.3)
        self.gift_weight = rng.paretovariate(1.1) if rng.random() < 0.15 else 0.0
        self.follows = rng.random() < 0.3
        self.sub = rng.random() < 0.03
        self.mod = i in (1, 2)
        self.level = rng.choice([0, 0, 0, 1, 2, 5, 10, 15, 22])

    def fields(self) -> dict:
        return {"userId": self.user_id, "uniqueId": self.unique_id, "nickname": self.nickname,
                "followRole": 1 if self.follows else 0, "isModerator": self.mod, "isSubscriber": self.sub,
                "gifterLevel": self.level, "isNewGifter": False, "topGifterRank": None}


def _pick(rng: random.Random, viewers: list[_Viewer], weights: list[float]) -> _Viewer:
    return rng.choices(viewers, weights=weights, k=1)[0]


def generate(minutes: float, seed: int, *, max_events: int | None = None, start_ms: int | None = None,
             malformed: bool = False, backlog: bool = True) -> Iterator[bytes]:
    """Yield the session's lines (without newlines), deterministically for a seed."""
    rng = random.Random(seed)
    if start_ms is None:
        start_ms = int(datetime.fromisoformat(DEFAULT_START).timestamp() * 1000)
    end_ms = start_ms + int(minutes * 60_000)
    population = [_Viewer(rng, i) for i in range(max(400, min(40_000, int((max_events or 0) / 60) or 400)))]
    chat_w = [v.chat_weight for v in population]
    gifters = [v for v in population if v.gift_weight] or population[:5]
    gift_w = [v.gift_weight for v in gifters]
    gift_names_w = [g[4] for g in GIFTS]
    msg = [7_300_000_000_000_000_000 + seed * 1_000_000_000]
    recent: list[bytes] = []
    count = 0
    total_likes = 0
    viewers_now = 40
    next_viewers = start_ms
    next_backlog = start_ms + int((end_ms - start_ms) * rng.uniform(0.3, 0.5)) if backlog else None
    broken_at = {rng.randint(50, 400), rng.randint(401, 1500)} if malformed else set()
    pending: list[tuple[int, bytes]] = []  # streak frames scheduled ahead, (ts, line)

    def line(event: str, ts: int, data: dict) -> bytes:
        msg[0] += rng.randint(1, 999)
        data["msgId"] = str(msg[0])
        data["createTime"] = str(ts)
        return orjson.dumps({"event": event, "data": data})

    t = start_ms
    while True:
        # one "tick": a burst of 1-10 events around t, then a gap; lulls now and then
        if rng.random() < 0.004:
            t += rng.randint(30_000, 90_000)  # a quiet lull
        t += int(rng.expovariate(1 / 900))
        minute = (t - start_ms) / 60_000
        if t >= end_ms and not pending:
            break
        due = [p for p in pending if p[0] <= t]
        pending = [p for p in pending if p[0] > t]
        out: list[bytes] = [b for _, b in sorted(due, key=lambda p: p[0])]
        if t < end_ms:
            if t >= next_viewers:
                ramp = min(1.0, 0.25 + minute / 8)
                wave = 1 + 0.35 * math.sin(minute / 3.1)
                raid = 2.5 if 14 < minute % 60 < 15 else 1
                viewers_now = max(5, int((60 + rng.gauss(0, 6)) * ramp * wave * raid * 2))
                out.append(line("roomUser", t, {"viewerCount": viewers_now, "topViewers": []}))
                next_viewers = t + rng.randint(5_000, 10_000)
            for _ in range(rng.randint(1, 10)):
                r = rng.random()
                ts = t + rng.randint(0, 400)
                if r < 0.47:
                    v = rng.choice(population)
                    n = rng.randint(1, 15)
                    total_likes += n
                    out.append(line("like", ts, {**v.fields(), "likeCount": n, "totalLikeCount": total_likes,
                                                 "displayType": "pm_mt_msg_viewer", "label": "{0:user} liked the LIVE"}))
                elif r < 0.69:
                    v = rng.choice(population)
                    out.append(line("member", ts, {**v.fields(), "actionId": 1, "label": "{0:user} joined"}))
                elif r < 0.89:
                    v = _pick(rng, population, chat_w)
                    text = rng.choice(COMMANDS) if rng.random() < 0.08 else rng.choice(CHAT)
                    out.append(line("chat", ts, {**v.fields(), "comment": text}))
                elif r < 0.915:
                    out += _gift(rng, line, _pick(rng, gifters, gift_w), ts, gift_names_w, pending)
                elif r < 0.96:
                    v = rng.choice(population)
                    kind = FOLLOW if rng.random() < 0.7 else SHARE
                    if kind == FOLLOW:
                        v.follows = True
                    out.append(line("social", ts, {**v.fields(), "displayType": kind,
                                                   "label": "{0:user} followed the LIVE creator" if kind == FOLLOW
                                                   else "{0:user} shared the LIVE"}))
                elif r < 0.962:
                    v = rng.choice(population)
                    v.sub = True
                    out.append(line("subscribe", ts, {**v.fields(), "subMonth": rng.randint(1, 12)}))
        if next_backlog is not None and t >= next_backlog and len(recent) > 30:
            out += recent[-rng.randint(10, 30):]  # a reconnect replays what we already had
            next_backlog = None
        for b in out:
            count += 1
            if count == min(broken_at, default=0):
                yield b[: len(b) // 2]  # a line cut short (the event is lost, as on a real broken pipe)
            elif count == max(broken_at, default=0):
                yield b'{"event": "gift", "data": {"giftId": "oops", "diamondCount": [1], "msgId": "bad"}}'
                count += 1
                yield b
            else:
                yield b
            recent.append(b)
            if len(recent) > 60:
                del recent[:30]
            if max_events is not None and count >= max_events:
                return
    last = max(t, end_ms)
    yield line("streamEnd", last, {"action": 3})


def _gift(rng: random.Random, line, v: _Viewer, ts: int, weights: list[float],
          pending: list[tuple[int, bytes]]) -> list[bytes]:
    name, gift_id, diamonds, gift_type, _ = rng.choices(GIFTS, weights=weights, k=1)[0]
    base = {**v.fields(), "giftId": gift_id, "giftName": name, "diamondCount": diamonds, "giftType": gift_type,
            "groupId": str(rng.randint(10**15, 10**16)), "describe": f"sent {name}"}
    if gift_type != 1:
        return [line("gift", ts, {**base, "repeatCount": 1, "repeatEnd": False})]
    frames, count, t = [], 0, ts
    for _ in range(max(1, int(rng.paretovariate(1.4)))):
        count += rng.choice([1, 1, 1, 2, 5])
        frames.append((t, {**base, "repeatCount": count, "repeatEnd": False}))
        t += rng.randint(150, 700)
    lost = rng.random() < 0.03
    if not lost:
        frames.append((t, {**base, "repeatCount": count, "repeatEnd": True}))
    first_ts, first = frames[0]
    pending.extend((ft, line("gift", ft, f)) for ft, f in frames[1:])
    return [line("gift", first_ts, first)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--events", type=int, help="stop after this many lines")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default=DEFAULT_START, help="ISO time the stream starts")
    parser.add_argument("--malformed", action="store_true", help="include two broken lines")
    parser.add_argument("--no-backlog", action="store_true", help="no reconnect backlog")
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    args = parser.parse_args()
    minutes = args.minutes if args.events is None or "--minutes" in sys.argv else 1e9
    write_lines(generate(minutes, args.seed, max_events=args.events, start_ms=iso_to_ms(args.start),
                         malformed=args.malformed, backlog=not args.no_backlog), args.output)

if __name__ == "__main__":
    main()
