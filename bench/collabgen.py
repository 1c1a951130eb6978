"""The collaboration example: a 13-minute live with a co-host and two battles, in TikTok-Live-Connector
2.x's wire format.

    python bench/collabgen.py -o examples/collab-session.jsonl

Each line is ``{"event": ..., "data": {...}}`` as a TikTok-Live-Connector 2.x app forwards its events
(``src/types/events.ts`` names; the data are ``tiktok-live-proto`` v3 objects as ts-proto writes them:
nested ``common`` and ``user``, int64s as strings, enums as numbers, protobuf maps as objects or
``{key, value}`` lists) — the shapes of the decoder's fixtures in ``tests/fixtures/payloads``.

The story (times from the start): viewers arrive and chat; at 0:30 a co-host, Mia, joins
(``linkMessage``, scene 2); at 1:00 a battle against Rex begins (``linkMicBattle`` action 4), the
armies' scores come every 30 s (``linkMicArmies``), we are behind with 25 s left, a comeback, and
we win (action 5, ``battleResult``) with Ana as MVP; an envelope (treasure chest) drops; at 7:00 a
second battle, against a creator with a hostile name, is lost with 20 s left behind; Mia leaves;
the stream ends (``controlMessage`` action 3). It is scripted, not random: the same bytes every run.
"""

from __future__ import annotations

import argparse
from typing import Any, Iterator

import orjson

from genout import iso_to_ms, write_lines

DEFAULT_START = "2026-11-21T19:00:00+00:00"
ROOM = "7301234567890123456"
HOST = {"userId": "6900000000000000009", "displayId": "demo.creator", "nickName": "Demo Creator", "roomId": ROOM}
MIA = ("7000000000000000021", "mia.sings", "Mia 🎤")
REX = {"userId": "7000000000000000031", "displayId": "rex.plays", "nickName": "Rex 🦖", "roomId": "7399999999999999991"}
ZED = {"userId": "7000000000000000041", "displayId": "zed", "nickName": "<b>Zed</b>{{7*7}}",
       "roomId": "7399999999999999992"}
VIEWERS = {
    "ana": ("6812345678901234567", "ana.b", "Ana 🌸"),
    "bruno": ("6812345678901234568", "bruno_22", "Bruno"),
    "chloe": ("6812345678901234569", "chloe.x", "Chloé"),
    "dev": ("6812345678901234570", "dev", "Dev"),
    "emi": ("6812345678901234571", "emi.emi", "えみ"),
    "farah": ("6812345678901234572", "farah", "فرح"),
    "gus": ("6812345678901234573", "gus", "{{7*7}}"),
}
ROSE, CORGI, GALAXY, DOUGHNUT = (5655, "Rose", 1, 1), (6267, "Corgi", 299, 2), (11046, "Galaxy", 1000, 2), \
    (5879, "Doughnut", 30, 1)


def user(who: tuple[str, str, str], follow: int = 1) -> dict[str, Any]:
    uid, handle, nick = who
    return {"id": uid, "idStr": uid, "displayId": handle, "nickname": nick,
            "followInfo": {"followingCount": "10", "followerCount": "20", "followStatus": str(follow), "pushStatus": "0"},
            "followStatus": "0", "isFollower": False}


class Session:
    def __init__(self, start_ms: int) -> None:
        self.start = start_ms
        self.n = 0
        self.lines: list[bytes] = []
        self.group = 0

    def emit(self, at_s: float, event: str, data: dict[str, Any]) -> int:
        self.n += 1
        ts = self.start + int(at_s * 1000)
        common = {"method": "", "msgId": str(7301000000000000000 + self.n), "roomId": ROOM, "createTime": str(ts),
                  "isShowMsg": True, "describe": ""}
        self.lines.append(orjson.dumps({"event": event, "data": {"common": common, **data}}))
        return ts

    def viewers(self, at: float, count: int) -> None:
        self.emit(at, "roomUser", {"ranks": [], "total": str(count), "totalUser": str(count * 9), "popStr": str(count)})

    def join(self, at: float, who: str) -> None:
        self.emit(at, "member", {"user": user(VIEWERS[who]), "memberCount": 100, "action": 1, "userId": "0"})

    def chat(self, at: float, who: str, text: str) -> None:
        self.emit(at, "chat", {"user": user(VIEWERS[who]), "content": text, "emotes": []})

    def like(self, at: float, who: str, count: int, total: int) -> None:
        self.emit(at, "like", {"count": count, "total": str(total), "user": user(VIEWERS[who])})

    def follow(self, at: float, who: str) -> None:
        self.emit(at, "follow", {"user": user(VIEWERS[who], follow=0), "action": "1", "followCount": "35",
                                 "shareCount": 0})
        # (TLC 2.x sets common.displayText.key; the forced "follow" event name decides the kind already)

    def gift(self, at: float, who: str, gift: tuple[int, str, int, int], count: int = 1) -> int:
        """A gift: a streakable one as frames 1..count (0.4 s apart) and its end; others once."""
        gift_id, name, diamonds, kind = gift
        self.group += 1
        base = {"giftId": str(gift_id), "groupId": str(1763665200 + self.group), "user": user(VIEWERS[who]),
                "gift": {"id": str(gift_id), "name": name, "diamondCount": diamonds, "type": kind,
                         "combo": kind == 1, "describe": f"sent {name}"}}
        if kind != 1:
            self.emit(at, "gift", {**base, "repeatCount": 1, "repeatEnd": 0, "comboCount": 1})
            return diamonds
        for i in range(1, count + 1):
            self.emit(at + (i - 1) * 0.4, "gift", {**base, "repeatCount": i, "repeatEnd": 0, "comboCount": i})
        self.emit(at + count * 0.4, "gift", {**base, "repeatCount": count, "repeatEnd": 1, "comboCount": count})
        return diamonds * count

    def cohost(self, at: float, join: bool) -> None:
        if join:
            self.emit(at, "linkMessage", {"messageType": 6, "linkerId": "7700000000000000001", "scene": 2,
                                          "enterContent": {"linkedUsers": [{"user": user(MIA, follow=2)}]}})
        else:
            self.emit(at, "linkMessage", {"messageType": 7, "linkerId": "7700000000000000001", "scene": 2,
                                          "leaveContent": {"userId": MIA[0], "linkmicIdStr": "1", "leaveReason": ""}})

    def _anchors(self, rival: dict[str, str]) -> list[dict[str, Any]]:
        return [{"key": a["userId"], "value": {"user": a, "tags": []}} for a in (HOST, rival)]

    def battle_start(self, at: float, battle_id: str, rival: dict[str, str], duration: int) -> dict[str, Any]:
        settings = {"battleId": battle_id, "startTimeMs": str(self.start + int(at * 1000)), "duration": duration,
                    "channelId": "1"}
        self.emit(at, "linkMicBattle", {"battleId": battle_id, "action": 4, "battleSettings": settings,
                                        "anchorsInfo": self._anchors(rival)})
        return settings

    @staticmethod
    def _armies(rival: dict[str, str], ours: int, theirs: int, fans: dict[str, int]) -> dict[str, Any]:
        army = [{"userId": VIEWERS[w][0], "userIdStr": VIEWERS[w][0], "score": str(s), "nickname": VIEWERS[w][2],
                 "diamondScore": str(s)} for w, s in sorted(fans.items(), key=lambda kv: -kv[1])]
        return {HOST["userId"]: {"userArmies": army, "hostscore": str(ours), "anchorIdStr": HOST["userId"]},
                rival["userId"]: {"userArmies": [], "hostscore": str(theirs), "anchorIdStr": rival["userId"]}}

    def armies(self, at: float, settings: dict[str, Any], rival: dict[str, str], ours: int, theirs: int,
               fans: dict[str, int]) -> None:
        self.emit(at, "linkMicArmies", {"battleId": settings["battleId"], "armies": self._armies(rival, ours, theirs, fans),
                                        "triggerReason": 1, "battleSettings": settings})

    def battle_end(self, at: float, settings: dict[str, Any], rival: dict[str, str], ours: int, theirs: int,
                   fans: dict[str, int]) -> None:
        won = ours > theirs
        result = {HOST["userId"]: {"userId": HOST["userId"], "result": 0 if won else 1, "score": str(ours)},
                  rival["userId"]: {"userId": rival["userId"], "result": 1 if won else 0, "score": str(theirs)}}
        armies = [{"key": k, "value": v} for k, v in self._armies(rival, ours, theirs, fans).items()]
        self.emit(at, "linkMicBattle", {"battleId": settings["battleId"], "action": 5, "battleResult": result,
                                        "armies": armies, "anchorsInfo": self._anchors(rival)[:1]})

    def envelope(self, at: float, who: str, diamonds: int, people: int) -> None:
        uid, _, nick = VIEWERS[who]
        self.emit(at, "envelope", {"display": 1, "envelopeInfo": {
            "envelopeId": "7320000000000000001", "businessType": 1, "sendUserName": nick, "sendUserId": uid,
            "diamondCount": diamonds, "peopleCount": people, "unpackAt": 60}})

    def end(self, at: float) -> None:
        self.emit(at, "controlMessage", {"action": 3, "tips": ""})


def generate(start_ms: int) -> Iterator[bytes]:
    s = Session(start_ms)
    s.viewers(0, 85)
    for i, who in enumerate(("ana", "bruno", "chloe", "dev", "emi")):
        s.join(1 + i * 2, who)
    s.chat(4, "ana", "hi!! 🌸")
    s.chat(9, "bruno", "hello from Brazil 🇧🇷")
    s.like(12, "chloe", 12, 120)
    s.chat(15, "chloe", "battle today?")
    s.gift(20, "dev", ROSE, 3)
    s.follow(25, "emi")

    # 0:30 a co-host joins
    s.cohost(30, join=True)
    s.chat(34, "ana", "hi Mia!! 🎤")
    s.viewers(40, 140)
    s.join(45, "farah")
    s.chat(50, "farah", "سلام")

    # 1:00 battle 1 against Rex, five minutes; we come back from behind in the last 30 s and win
    b1 = s.battle_start(60, "7400000000000000001", REX, 300)
    fans: dict[str, int] = {}
    ours = 0

    def give(at: float, who: str, gift: tuple[int, str, int, int], count: int = 1) -> None:
        nonlocal ours
        worth = s.gift(at, who, gift, count)
        ours += worth
        fans[who] = fans.get(who, 0) + worth

    s.chat(63, "bruno", "let's go!!! 🔥")
    give(70, "chloe", ROSE, 5)
    give(85, "bruno", CORGI)
    s.armies(90, b1, REX, ours, 250, fans)
    s.chat(100, "dev", "Rex is strong 😅")
    give(110, "emi", DOUGHNUT, 2)
    s.armies(120, b1, REX, ours, 600, fans)
    s.like(130, "farah", 40, 400)
    give(140, "dev", ROSE, 8)
    s.armies(150, b1, REX, ours, 700, fans)
    s.chat(170, "ana", "come on!")
    s.armies(180, b1, REX, ours, 900, fans)
    give(200, "chloe", CORGI)
    s.armies(210, b1, REX, ours, 1100, fans)
    s.armies(240, b1, REX, ours, 1250, fans)
    s.armies(270, b1, REX, ours, 1350, fans)
    s.armies(300, b1, REX, ours, 1500, fans)
    s.armies(335, b1, REX, ours, 1600, fans)  # 25 s left and behind: the rally
    give(340, "ana", GALAXY)
    s.armies(345, b1, REX, ours, 1640, fans)  # ahead now: no second rally
    s.armies(352, b1, REX, ours, 1660, fans)
    s.battle_end(360, b1, REX, ours, 1660, fans)  # won, Ana the MVP
    s.chat(363, "bruno", "WE WON 🏆")
    s.chat(366, "emi", "gg!")

    # 6:40 an envelope (treasure chest) drops
    s.envelope(400, "bruno", 200, 15)
    s.join(405, "gus")
    s.chat(410, "gus", "what did I miss")
    s.viewers(415, 160)

    # 7:00 battle 2, against a creator whose name looks like markup and code; lost
    b2 = s.battle_start(420, "7400000000000000002", ZED, 300)
    fans, ours = {}, 0
    give(440, "chloe", DOUGHNUT, 3)
    s.armies(450, b2, ZED, ours, 500, fans)
    give(480, "dev", CORGI)
    s.armies(510, b2, ZED, ours, 1200, fans)
    s.armies(600, b2, ZED, ours, 2400, fans)
    s.armies(700, b2, ZED, ours, 3000, fans)  # 20 s left and behind: the rally
    give(705, "chloe", ROSE, 4)
    s.armies(710, b2, ZED, ours, 3300, fans)  # still behind: no second rally in this battle
    s.battle_end(720, b2, ZED, ours, 3400, fans)  # lost, Dev the MVP
    s.chat(724, "chloe", "gg, next time!")

    # 12:10 the co-host leaves; 13:00 the stream ends
    s.cohost(730, join=False)
    s.chat(740, "ana", "thanks for the stream ❤️")
    s.end(780)
    yield from s.lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default=DEFAULT_START, help="ISO time the stream starts")
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    args = parser.parse_args()
    write_lines(generate(iso_to_ms(args.start)), args.output)

if __name__ == "__main__":
    main()
