"""Which side of a battle is ours, per room: two rooms decoded in one process (``livebot ingest`` runs a
source per room) that battle each other share the battle id, and each must still see its own side."""

from __future__ import annotations

from bot.events.wire import decode_obj

BATTLE = "7400000000000000077"
ROOM_A, HOST_A = "7301234567890100001", "6900000000000000101"
ROOM_B, HOST_B = "7301234567890100002", "6900000000000000102"


def _anchor(uid: str, room: str, handle: str) -> dict:
    return {"key": uid, "value": {"user": {"userId": uid, "nickName": handle, "displayId": handle, "roomId": room}}}


def _start(room: str, msg: str) -> dict:
    return {"event": "linkMicBattle", "data": {
        "common": {"msgId": msg, "roomId": room, "createTime": "1763665216000"}, "battleId": BATTLE, "action": 4,
        "battleSettings": {"battleId": BATTLE, "startTimeMs": "1763665216000", "duration": 300},
        "anchorsInfo": [_anchor(HOST_A, ROOM_A, "host.a"), _anchor(HOST_B, ROOM_B, "host.b")]}}


def _armies(room: str, msg: str) -> dict:
    # the other room's host first: guessing "the first army is ours" would be wrong in room A
    return {"event": "linkMicArmies", "data": {
        "common": {"msgId": msg, "roomId": room, "createTime": "1763665217000"}, "battleId": BATTLE,
        "triggerReason": 1, "armies": {HOST_B: {"userArmies": [], "hostscore": "900"},
                                       HOST_A: {"userArmies": [], "hostscore": "1200"}}}}


def test_two_rooms_battling_each_other_each_keep_their_own_side():
    [start_a] = decode_obj(_start(ROOM_A, "1"))
    [start_b] = decode_obj(_start(ROOM_B, "2"))  # the same battle, seen from the other room, decoded after
    assert [o["user_id"] for o in start_a.data["opponents"]] == [HOST_B]
    assert [o["user_id"] for o in start_b.data["opponents"]] == [HOST_A]
    update_a, _ = decode_obj(_armies(ROOM_A, "3"))
    update_b, _ = decode_obj(_armies(ROOM_B, "4"))
    assert (update_a.data["our_score"], update_a.data["their_score"]) == (1200, 900)
    assert (update_b.data["our_score"], update_b.data["their_score"]) == (900, 1200)
