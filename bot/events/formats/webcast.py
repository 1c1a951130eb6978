"""TikTok's webcast messages as JSON, in every shape the tools that forward them use.

One reader for a message of a known webcast type (``WebcastGiftMessage``, ...) whatever carried it:

- TikTok-Live-Connector 2.x objects (``tiktok-live-proto`` v3, ts-proto): nested ``common``, ``user``
  (``id``/``idStr``, ``displayId``, ``followInfo.followStatus``, ``badgeList``), ``gift``, int64s as
  strings, enums as numbers; forwarded as ``{"event": "gift", "data": {...}}`` or in a bundle.
- Euler Stream schema v2 (``Euler-WebSocket-SDK`` ``src/webcast/schemas/tiktok-schema-v2.ts``):
  ``common``, ``user.userId``/``uniqueId``, ``giftDetails.giftName``, ``user.badges[].badgeScene``.
- Euler Stream schema v1 (``tiktok-schema-v1.ts``, TikTok-Live-Connector 1.x's protobuf):
  ``event.msgId``/``createTime``/``eventDetails.displayType``, ``comment``, ``actionId``,
  ``giftDetails``, ``battleItems``, ``treasureBoxData``, ``questionDetails``.
- TikTok-Live-Connector 1.x / TikFinity flat objects (the user's and the event's fields merged into
  the message: ``userId``, ``uniqueId``, ``msgId``, ``battleArmies``, ``questionText``, ...) for the
  kinds the flat fast path in ``bot.events.wire`` does not read itself.

Field precedence: a value nested where its owner put it (``user.id``, ``followInfo.followStatus``)
wins over a protobuf default at the top (``userId: "0"``, ``followStatus: "0"``); the message's
``userIdentity`` sets the moderator / subscriber / follower flags. A message of a known kind without
what the kind needs (a gift without sender or gift id, a chat without text or sender) raises
ValueError: the caller refuses it (``DecodeError``), never an event with blanks. An expected field
that is absent is counted in ``Lossy.total``.
"""

from __future__ import annotations

from typing import Any

from bot.events.formats.common import Lossy, _bool, _count, _dict, _gift_data, _int, _ms, _str
from bot.events.model import (BATTLE_ARMIES, BATTLE_END, BATTLE_START, BATTLE_UPDATE, CHAT, COHOST_JOIN, COHOST_LEAVE,
                              EMOTE, ENVELOPE, FOLLOW, GIFT, GOAL_UPDATE, GUEST_JOIN, GUEST_LEAVE, JOIN, LIKE,
                              LINKMIC_LAYER, LIVE_END, LIVE_PAUSE, LIVE_RESUME, MAX_INT, MOD_DELETE, QUESTION,
                              RANK_UPDATE, ROOM_PIN, SHARE, SUBSCRIBE, SUPERFAN_BOX, SUPERFAN_JOIN, TIKTOK_POLL,
                              UNKNOWN, VIEWERS, Event, User)

# TikTok-Live-Connector's event names (src/types/events.ts ``WebcastEvent``; 1.x used the same for
# its flat objects) and TikFinity's, to the webcast message each one carries. Some names fix the kind
# themselves (TLC decided it from the message): follow, share, streamEnd, superFanJoin, superFanBox.
EVENT_NAMES: dict[str, str] = {
    "chat": "WebcastChatMessage", "member": "WebcastMemberMessage", "gift": "WebcastGiftMessage",
    "roomUser": "WebcastRoomUserSeqMessage", "social": "WebcastSocialMessage", "like": "WebcastLikeMessage",
    "questionNew": "WebcastQuestionNewMessage", "linkMicBattle": "WebcastLinkMicBattle",
    "linkMicArmies": "WebcastLinkMicArmies", "emote": "WebcastEmoteChatMessage", "envelope": "WebcastEnvelopeMessage",
    "follow": "WebcastSocialMessage", "share": "WebcastSocialMessage", "streamEnd": "WebcastControlMessage",
    "controlMessage": "WebcastControlMessage", "barrage": "WebcastBarrageMessage", "goalUpdate": "WebcastGoalUpdateMessage",
    "imDelete": "WebcastImDeleteMessage", "rankUpdate": "WebcastRankUpdateMessage", "pollMessage": "WebcastPollMessage",
    "linkMicMethod": "WebcastLinkMicMethod", "linkMessage": "WebcastLinkMessage", "linkLayer": "WebcastLinkLayerMessage",
    "roomPin": "WebcastRoomPinMessage", "subNotify": "WebcastSubNotifyMessage", "subscribe": "WebcastSubNotifyMessage",
    "superFan": "WebcastBarrageMessage", "superFanJoin": "WebcastBarrageMessage", "superFanBox": "WebcastEnvelopeMessage",
}
FORCED: dict[str, str] = {"follow": FOLLOW, "share": SHARE, "streamEnd": LIVE_END, "superFanJoin": SUPERFAN_JOIN,
                          "superFanBox": SUPERFAN_BOX}

_CONTROL = {1: LIVE_PAUSE, 2: LIVE_RESUME, 3: LIVE_END, 4: LIVE_END}  # ControlAction (v3 enums.ts)
_SUPER_FAN_BOX = 19  # EnvelopeBusinessType.SUPER_FAN_BOX
_LAYER_ACTIONS = {1: "create", 2: "invite", 3: "apply", 4: "permit", 5: "reply", 6: "kick_out", 7: "cancel_apply",
                  8: "cancel_invite", 9: "leave", 10: "finish", 11: "list_change", 12: "join_direct", 13: "join_group",
                  14: "permit_group", 15: "cancel_group", 16: "leave_group", 17: "p2p_group_change",
                  18: "group_change"}  # LinkLayerMessageType
_RANK_TYPES = {0: "hourly", 1: "weekly", 2: "hourly_star", 4: "weekly_rising", 5: "weekly_rookie", 8: "daily",
               10: "game", 14: "daily_rookie"}  # ProfitRankType
_BATTLE_OPEN, _BATTLE_FINISH, _BATTLE_CUT_SHORT = 4, 5, 6  # LinkMicBattleBattleAction
_ARMIES_END = 2  # LinkMicArmiesTriggerReason.BATTLE_END
_RESULT = {0: "us", 1: "them", 2: "draw"}  # BattleResultResult, for our side

# Which anchor of a battle is the room's own host: learned from the battle's start (the anchor whose
# room is this room) and used by the armies messages that follow, which name anchors by id only.
_our_anchor: dict[str, str] = {}


def _id(value: Any, field: str) -> str:
    """An id as text; protobuf's default 0 / "0" / "" means not set."""
    if value is None or value == 0 or value == "0" or value == "":
        return ""
    if isinstance(value, bool):
        raise ValueError(f"field '{field}' is not an id: {value!r}")
    return _str(value, field)


def _get(d: dict, *keys: str) -> Any:
    """The first of ``keys`` present and not None."""
    for k in keys:
        v = d.get(k)
        if v is not None:
            return v
    return None


def _set(d: dict, *keys: str) -> Any:
    """The first of ``keys`` set to a value other than a protobuf default (None, 0, "0", "", false)."""
    for k in keys:
        v = d.get(k)
        if v is not None and v != 0 and v != "0" and v != "":
            return v
    return None


def _badges(u: dict) -> list[tuple[int, int]]:
    """(scene type, level) of a user's badges: v3 ``badgeList[].sceneType``, Euler v2
    ``badges[].badgeScene``, v1 ``badges[].badgeSceneType``; level from ``privilegeLogExtra.level``."""
    out = []
    for key in ("badgeList", "badges"):
        badges = u.get(key)
        if not isinstance(badges, list):
            continue
        for b in badges:
            if not isinstance(b, dict):
                continue
            scene = _get(b, "sceneType", "badgeScene", "badgeSceneType")
            extra = _dict(_get(b, "privilegeLogExtra", "logExtra"), "privilegeLogExtra")
            out.append((_int(scene, "sceneType") if not isinstance(scene, str) or scene.isdigit() else -1,
                        _int(extra.get("level") or 0, "level")))
    return out


def read_user(d: dict, u: Any = None, *, identity: Any = None) -> User | None:
    """The viewer of a message: nested ``user`` first, then flat fields; None if it names nobody."""
    u = _dict(d.get("user") if u is None else u, "user")
    ident = _dict(d.get("userIdentity") if identity is None else identity, "userIdentity") or _dict(
        u.get("userIdentity"), "user.userIdentity")
    user_id = (_id(u.get("userId"), "user.userId") or _id(u.get("idStr"), "user.idStr") or _id(u.get("id"), "user.id")
               or _id(u.get("userIdStr"), "user.userIdStr") or _id(d.get("userId"), "userId"))
    unique_id = _str(_set(u, "uniqueId", "displayId") or d.get("uniqueId"), "uniqueId")
    if not user_id and not unique_id:
        return None
    nickname = _str(_set(u, "nickname", "nickName") or d.get("nickname"), "nickname")
    follow_info = _dict(u.get("followInfo"), "user.followInfo") or _dict(d.get("followInfo"), "followInfo")
    follow = _int(_set(follow_info, "followStatus") or _set(u, "followRole", "followStatus")
                  or _set(d, "followRole", "followStatus"), "followRole")
    if not follow:
        follow = 2 if _bool(ident.get("isMutualFollowingWithAnchor")) else 1 if _bool(
            ident.get("isFollowerOfAnchor")) else 0
    badges = _badges(u) if "badgeList" in u or "badges" in u else []
    moderator = (_bool(ident.get("isModeratorOfAnchor")) or _bool(u.get("isModerator"))
                 or _bool(d.get("isModerator")) or any(s == 1 for s, _ in badges))
    subscriber = (_bool(ident.get("isSubscriberOfAnchor")) or _bool(u.get("isSubscriber"))
                  or _bool(d.get("isSubscriber")) or any(s in (4, 7) for s, _ in badges))
    level = _int(_set(u, "gifterLevel") or _set(d, "gifterLevel"), "gifterLevel")
    if not level:
        level = next((lv for s, lv in badges if s == 8 and lv), 0)
    if not level:
        grade = _dict(_get(u, "payGrade", "userHonor"), "payGrade")
        level = _int(grade.get("level"), "payGrade.level")
    return User(user_id=user_id, unique_id=unique_id, nickname=nickname, follow_role=follow, is_moderator=moderator,
                is_subscriber=subscriber, gifter_level=level)


def _brief(user: User | None, **more: Any) -> dict[str, Any]:
    base = {"user_id": user.user_id, "unique_id": user.unique_id, "nickname": user.nickname} if user else {}
    return {**base, **more}


def _pairs(value: Any, field: str) -> list[tuple[str, Any]]:
    """A protobuf map as JSON: an object, or ts-proto's list of ``{key, value}``."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        return [(_str(_dict(x, field).get("key"), field + ".key"), _dict(x, field).get("value")) for x in value]
    raise ValueError(f"field '{field}' is not a map: {type(value).__name__}")


def _list(value: Any, field: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"field '{field}' is not a list: {type(value).__name__}")
    return value


class _Ctx:
    __slots__ = ("lossy",)

    def __init__(self) -> None:
        self.lossy = False

    def expect(self, value: Any) -> Any:
        if value is None:
            self.lossy = True
        return value


def decode_message(name: str, d: dict, fallback_ts: int, room_id: str, raw: Any,
                   forced: str | None = None) -> list[Event]:
    """Events from one webcast message ``d`` of type ``name``; ValueError if it lacks what its kind needs."""
    common = _dict(d.get("common"), "common")
    v1 = d.get("event")
    v1 = v1 if isinstance(v1, dict) and ("msgId" in v1 or "createTime" in v1 or "eventDetails" in v1) else {}
    created = _set(common, "createTime") or _set(v1, "createTime") or _set(d, "createTime")
    ts = _ms(created, "createTime") if created is not None else fallback_ts
    room = _id(_set(common, "roomId") or d.get("roomId"), "roomId") or room_id
    msg_id = _id(_set(common, "msgId") or _set(v1, "msgId") or d.get("msgId"), "msgId")
    ctx = _Ctx()
    handler = _HANDLERS.get(name)
    if handler is None:
        out = [(UNKNOWN, None, {"kind": name})]
    else:
        out = handler(d, common, v1, ctx, forced, room, ts)
    if ctx.lossy:
        Lossy.total += 1
    events = []
    for i, (kind, user, data) in enumerate(out):
        events.append(Event(kind, ts, room, msg_id if i == 0 or not msg_id else f"{msg_id}#{i}", user, data, raw))
    return events


def _need_user(d: dict, what: str, **kw: Any) -> User:
    user = read_user(d, **kw)
    if user is None:
        raise ValueError(f"a {what} without a user")
    return user


# -- the classic kinds ------------------------------------------------------------------------------

def _chat(d, common, v1, ctx, forced, room, ts):
    text = _get(d, "content", "comment")
    if text is None or text == "":
        raise ValueError("a chat without text")
    return [(CHAT, _need_user(d, "chat"), {"text": _str(text, "content")})]


def _gift(d, common, v1, ctx, forced, room, ts):
    gift = d.get("gift")
    gift = gift if isinstance(gift, dict) and "gift_id" not in gift else {}  # TLC 1.x kept a snake_case copy
    details = _dict(d.get("giftDetails"), "giftDetails")
    gift_id = _set(d, "giftId") or _set(gift, "id") or _set(details, "id")
    original = d.get("originalName")
    name = ctx.expect(_set(d, "originalName") or _set(gift, "name") or _set(details, "giftName", "name")
                      or d.get("giftName"))
    diamonds = ctx.expect(_get(gift, "diamondCount") if gift else _get(details, "diamondCount") if details
                          else d.get("diamondCount"))
    gift_type = ctx.expect(_get(gift, "type") if gift else _get(details, "giftType", "type") if details
                           else d.get("giftType"))
    data = _gift_data(gift_id, name, diamonds, d.get("repeatCount"), gift_type, d.get("repeatEnd"), d.get("groupId"))
    if not data["gift_id"]:
        raise ValueError("a gift without a gift id")
    user = _need_user(d, "gift")
    shown = d.get("giftName")
    if original not in (None, "") and shown not in (None, "") and shown != original:
        data["display_name"] = _str(shown, "giftName")
    return [(GIFT, user, data)]


def _like(d, common, v1, ctx, forced, room, ts):
    count, total = ctx.expect(_get(d, "likeCount", "count")), ctx.expect(_get(d, "totalLikeCount", "total"))
    data = {"count": _count(count, "likeCount"), "total": _count(total, "totalLikeCount", MAX_INT)}
    return [(LIKE, _need_user(d, "like"), data)]


def _viewers(d, common, v1, ctx, forced, room, ts):
    count = _get(d, "viewerCount", "total")
    if count is None:
        raise ValueError("a viewer count without a count")
    return [(VIEWERS, None, {"count": _count(count, "viewerCount")})]


def _member(d, common, v1, ctx, forced, room, ts):
    action = _get(d, "actionId", "action")
    if action is not None and _int(action, "action") != 1:  # MemberMessageAction: 1 joined
        return [(UNKNOWN, None, {"kind": f"member:{_int(action, 'action')}"})]
    return [(JOIN, _need_user(d, "join"), {})]


def _social(d, common, v1, ctx, forced, room, ts):
    kind = forced
    if kind is None:
        shown = _dict(common.get("displayText"), "displayText")
        details = _dict(v1.get("eventDetails"), "eventDetails")
        key = _str(_set(shown, "key") or _set(details, "displayType") or d.get("displayType") or d.get("key") or "",
                   "displayText.key")
        kind = FOLLOW if "follow" in key else SHARE if "share" in key else None
        if kind is None:
            kind = {1: FOLLOW, 3: SHARE}.get(_int(d.get("action"), "action"), UNKNOWN)
        if kind == UNKNOWN:
            return [(UNKNOWN, None, {"kind": f"social:{key}" if key else "WebcastSocialMessage"})]
    return [(kind, _need_user(d, kind), {})]


def _subscribe(d, common, v1, ctx, forced, room, ts):
    months = _count(ctx.expect(_get(d, "subMonth", "subMonths")), "subMonth")
    return [(SUBSCRIBE, _need_user(d, "subscribe"), {"months": months})]


def _control(d, common, v1, ctx, forced, room, ts):
    if forced == LIVE_END:
        return [(LIVE_END, None, {})]
    action = _int(d.get("action"), "action")
    kind = _CONTROL.get(action)
    return [(kind, None, {})] if kind else [(UNKNOWN, None, {"kind": f"WebcastControlMessage:{action}"})]


# -- the new kinds -----------------------------------------------------------------------------------

def _question(d, common, v1, ctx, forced, room, ts):
    q = _dict(_get(d, "data", "questionDetails", "details"), "data")
    text = _get(q, "content", "questionText")
    if text is None:
        text = d.get("questionText")
    if text is None or text == "":
        raise ValueError("a question without text")
    user = read_user(q) if q.get("user") is not None else read_user(d)
    return [(QUESTION, user, {"text": _str(text, "content")})]


def _emote(d, common, v1, ctx, forced, room, ts):
    emote_list = _list(_get(d, "emoteList", "emotes"), "emoteList")
    first = _dict(emote_list[0], "emoteList[0]") if emote_list else _dict(d.get("emote"), "emote")
    emote_id = _set(first, "emoteId") or _set(d, "emoteId")
    if emote_id is None:
        raise ValueError("an emote without an emote id")
    return [(EMOTE, _need_user(d, "emote"), {"emote_id": _str(emote_id, "emoteId")})]


def _envelope(d, common, v1, ctx, forced, room, ts):
    info = _dict(d.get("envelopeInfo"), "envelopeInfo")
    box = _dict(d.get("treasureBoxData"), "treasureBoxData")
    key = _str(_dict(common.get("displayText"), "displayText").get("key") or "", "displayText.key").lower()
    kind = forced or (SUPERFAN_BOX if "ttlive_superfanbox" in key
                      or _int(info.get("businessType"), "businessType") == _SUPER_FAN_BOX else ENVELOPE)
    if info:
        # MessageRedEnvelopInfo.diamondCount: the chest's worth, which TikTok shows in coins
        diamonds = _count(ctx.expect(info.get("diamondCount")), "diamondCount")
        coins, people = diamonds, _count(ctx.expect(info.get("peopleCount")), "peopleCount")
        user = read_user({}, {"userId": info.get("sendUserId"), "nickname": info.get("sendUserName")})
    elif box:
        coins, diamonds = _count(box.get("coins"), "coins"), 0
        people = _count(ctx.expect(box.get("peopleCount")), "peopleCount")
        user = None
        holder = _dict(_dict(d.get("treasureBoxUser"), "treasureBoxUser").get("user2"), "user2")
        for item in _list(holder.get("user3"), "user3")[:1]:
            user = read_user({}, _dict(_dict(item, "user3").get("user4"), "user4").get("user"))
    else:
        raise ValueError("an envelope without envelopeInfo or treasureBoxData")
    if kind == SUPERFAN_BOX:
        return [(SUPERFAN_BOX, user, {"coins": coins, "people": people})]
    return [(ENVELOPE, user, {"coins": coins, "diamonds": diamonds, "people": people})]


def _barrage(d, common, v1, ctx, forced, room, ts):
    keys = [_str(_dict(d.get(k), k).get("key") or "", k + ".key").lower() for k in ("content", "commonBarrageContent")]
    if forced == SUPERFAN_JOIN or any("ttlive_superfan_commentnotif_superfanjoined" in k for k in keys):
        return [(SUPERFAN_JOIN, _need_user(d, "super fan join"), {})]
    return [(UNKNOWN, None, {"kind": "WebcastBarrageMessage"})]


def _goal(d, common, v1, ctx, forced, room, ts):
    goal = _dict(d.get("goal"), "goal")
    goal_id = _set(goal, "idStr", "id")
    if goal_id is None:
        raise ValueError("a goal update without a goal")
    subs = _list(goal.get("subGoals"), "goal.subGoals")
    sub = _dict(d.get("contributeSubgoal"), "contributeSubgoal") or (_dict(subs[0], "subGoals[0]") if subs else {})
    progress, target = ctx.expect(sub.get("progress")), ctx.expect(sub.get("target"))
    user = read_user({}, {"userId": _get(d, "contributorIdStr", "contributorId"),
                          "displayId": d.get("contributorDisplayId")})
    return [(GOAL_UPDATE, user, {"goal_id": _str(goal_id, "goal.id"),
                                 "description": _str(goal.get("description"), "goal.description"),
                                 "progress": _count(progress, "progress", MAX_INT),
                                 "target": _count(target, "target", MAX_INT)})]


def _poll(d, common, v1, ctx, forced, room, ts):
    poll_id = _set(d, "pollId")
    if poll_id is None:
        raise ValueError("a poll without a poll id")
    # Euler v2 names the update updateContent, and its contents' fields in PascalCase (OptionList, Title, Votes)
    for phase, key in (("start", "startContent"), ("update", "updateVotesContent"), ("update", "updateContent"),
                       ("end", "endContent")):
        content = d.get(key)
        if isinstance(content, dict) and content:
            break
    else:
        raise ValueError("a poll without its content")
    options = [{"text": _str(_get(_dict(o, "option"), "displayContent", "DisplayContent"), "displayContent"),
                "votes": _count(_get(_dict(o, "option"), "votes", "Votes"), "votes", MAX_INT)}
               for o in _list(_get(content, "optionList", "OptionList"), "optionList")]
    basic = _dict(d.get("pollBasicInfo"), "pollBasicInfo")
    title = _get(content, "title", "Title") or basic.get("title") or ""
    operator = _get(content, "operator", "Operator")
    user = read_user({}, operator) if operator else None
    return [(TIKTOK_POLL, user, {"poll_id": _str(poll_id, "pollId"), "title": _str(title, "title"), "options": options,
                                 "phase": phase})]


def _rank(d, common, v1, ctx, forced, room, ts):
    updates = _list(_get(d, "updates", "updatesList"), "updates")  # Euler v2: updatesList
    if not updates:
        raise ValueError("a rank update without updates")
    first = _dict(updates[0], "updates[0]")
    kind = first.get("rankType") or 0  # ProfitRankType; 0 (hourly) is the protobuf default
    if isinstance(kind, str) and kind.isdigit():  # Euler v2 carries it as text
        kind = int(kind)
    rank_type = _RANK_TYPES.get(kind, str(kind)) if isinstance(kind, int) else _str(kind or "", "rankType").lower()
    rank = ctx.expect(_get(first, "ownRank", "ownerRank"))
    return [(RANK_UPDATE, None, {"rank": _count(rank, "ownRank"), "rank_type": rank_type})]


def _im_delete(d, common, v1, ctx, forced, room, ts):
    ids = [_id(x, "deleteMsgIds") for x in _list(_get(d, "deleteMsgIds", "deleteMsgIdsList"), "deleteMsgIds")]
    ids = [x for x in ids if x]
    if not ids:
        raise ValueError("a moderator delete without message ids")
    return [(MOD_DELETE, None, {"msg_ids": ids})]


def _pin(d, common, v1, ctx, forced, room, ts):
    if _int(d.get("action"), "action") == 2:  # PinMessageActionType.PIN_CANCEL
        return [(UNKNOWN, None, {"kind": "WebcastRoomPinMessage:cancel"})]
    chat = _dict(d.get("chatMessage"), "chatMessage")
    text = _get(chat, "content", "comment")
    if text is None:
        raise ValueError("a room pin without a pinned chat")
    operator = read_user({}, d.get("operator")) if d.get("operator") else None
    return [(ROOM_PIN, read_user(chat), {"text": _str(text, "content"),
                                         "pinned_by": operator.to_dict() if operator else None})]


# -- battles and co-hosts -----------------------------------------------------------------------------

def _battle_id(d: dict) -> str:
    settings = _dict(_get(d, "battleSettings", "battleSetting"), "battleSettings")
    return _id(_set(d, "battleId") or settings.get("battleId"), "battleId")


def _time_left(d: dict, ts: int) -> int:
    settings = _dict(_get(d, "battleSettings", "battleSetting"), "battleSettings")
    start, duration = _int(settings.get("startTimeMs"), "startTimeMs"), _int(settings.get("duration"), "duration")
    if not start or not duration or not ts:
        return -1
    end = start + (duration + _int(settings.get("extraDurationSecond"), "extraDurationSecond")) * 1000
    return max(0, (end - ts) // 1000)


def _armies(d: dict) -> dict[str, tuple[int, list[dict]]]:
    """Per anchor id: (score, contributors best first), from every armies shape."""
    out: dict[str, tuple[int, list[dict]]] = {}
    for key in ("armies", "battleItems"):
        value = d.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict) and "hostUserId" in value[0]:
            for item in value:  # Euler v1: [{hostUserId, battleGroups: [{users, points}]}]
                item = _dict(item, key)
                score, top = 0, []
                for group in _list(item.get("battleGroups"), "battleGroups"):
                    group = _dict(group, "battleGroups")
                    score += _count(group.get("points"), "points", MAX_INT)
                    top += [_brief(read_user({}, u), score=0) for u in _list(group.get("users"), "users")]
                out[_id(item.get("hostUserId"), "hostUserId")] = (score, top)
            continue
        for anchor, army in _pairs(value, key):
            army = _dict(army, key)
            people = _list(_get(army, "userArmies", "userArmy"), "userArmies")
            top = []
            for p in people:
                p = _dict(p, "userArmies")
                top.append({"user_id": _id(_set(p, "userIdStr", "userId"), "userId"), "unique_id": "",
                            "nickname": _str(p.get("nickname"), "nickname"),
                            "score": _count(p.get("score"), "score", MAX_INT)})
            top.sort(key=lambda x: -x["score"])
            out[anchor] = (_count(_get(army, "hostscore", "hostScore"), "hostscore", MAX_INT), top)
    for item in _list(d.get("battleArmies"), "battleArmies"):  # TLC 1.x flat
        item = _dict(item, "battleArmies")
        top = [_brief(read_user(_dict(u, "participants")), score=0) for u in
               _list(item.get("participants"), "participants")]
        anchor = _id(item.get("hostUserId"), "hostUserId")
        score = out.get(anchor, (0, []))[0] + _count(item.get("points"), "points", MAX_INT)
        out[anchor] = (score, out.get(anchor, (0, []))[1] + top)
    return out


def _anchors(d: dict, room: str) -> tuple[str, list[dict]]:
    """(our anchor's id, the other anchors as user dicts) of a battle message."""
    ours, others = "", []
    for anchor, info in _pairs(_get(d, "anchorsInfo", "anchorInfo"), "anchorsInfo"):
        base = _dict(_dict(info, "anchorsInfo").get("user"), "anchorsInfo.user")
        uid = _id(base.get("userId"), "userId") or anchor
        if room and _id(base.get("roomId"), "roomId") == room:
            ours = uid
            continue
        others.append({"user_id": uid, "unique_id": _str(base.get("displayId"), "displayId"),
                       "nickname": _str(base.get("nickName"), "nickName")})
    for item in _list(d.get("battleUsers"), "battleUsers"):  # Euler v1 nested, TLC 1.x flat
        item = _dict(item, "battleUsers")
        group = _dict(item.get("battleGroup"), "battleGroup")
        user = read_user({}, group.get("user")) if group else read_user(item)
        if user is not None:
            others.append(_brief(user))
    return ours, others


def _sides(d: dict, battle_id: str, ctx: _Ctx) -> tuple[int, int, list[dict]]:
    armies = _armies(d)
    ours = _our_anchor.get(battle_id, "")
    if ours not in armies:
        ours = next(iter(armies), "")
        ctx.lossy = True  # which side is ours was not known: the first
    our_score, top = armies.get(ours, (0, []))
    theirs = max((s for a, (s, _) in armies.items() if a != ours), default=0)
    return our_score, theirs, top


def _remember(battle_id: str, anchor: str) -> None:
    if battle_id and anchor:
        if len(_our_anchor) >= 1000:
            _our_anchor.clear()
        _our_anchor[battle_id] = anchor


def _battle(d, common, v1, ctx, forced, room, ts):
    battle_id = _battle_id(d)
    if not battle_id and "battleUsers" not in d:
        raise ValueError("a battle without a battle id")
    action = d.get("action")
    action = _BATTLE_OPEN if action is None else _int(action, "action")
    ours, others = _anchors(d, room)
    _remember(battle_id, ours)
    if action == _BATTLE_OPEN:
        settings = _dict(_get(d, "battleSettings", "battleSetting"), "battleSettings")
        duration = ctx.expect(settings.get("duration")) if "battleUsers" not in d else settings.get("duration")
        return [(BATTLE_START, None, {"battle_id": battle_id, "opponents": others,
                                      "duration_s": _count(duration, "duration")})]
    if action in (_BATTLE_FINISH, _BATTLE_CUT_SHORT):
        our_score, their_score, top = _sides(d, battle_id, ctx)
        winner = None
        for anchor, result in _pairs(d.get("battleResult"), "battleResult"):
            result = _dict(result, "battleResult")
            score = _count(result.get("score"), "score", MAX_INT)
            if anchor == _our_anchor.get(battle_id, ours):
                winner = _RESULT.get(_int(result.get("result"), "result"))
                our_score = score or our_score
            else:
                their_score = max(their_score, score)
        if winner is None:
            winner = "us" if our_score > their_score else "them" if their_score > our_score else "draw"
        return [(BATTLE_END, None, {"battle_id": battle_id, "our_score": our_score, "their_score": their_score,
                                    "winner": winner, "mvp": top[0] if top else None, "top": top})]
    return [(UNKNOWN, None, {"kind": f"WebcastLinkMicBattle:{action}"})]


def _armies_message(d, common, v1, ctx, forced, room, ts):
    battle_id = _battle_id(d)
    if not battle_id:
        ctx.lossy = True  # Euler v1 and TLC 1.x armies carry no battle id
    our_score, their_score, top = _sides(d, battle_id, ctx)
    scores = {"battle_id": battle_id, "our_score": our_score, "their_score": their_score}
    reason = _int(_get(d, "triggerReason", "battleStatus"), "triggerReason")
    if reason == _ARMIES_END:
        winner = "us" if our_score > their_score else "them" if their_score > our_score else "draw"
        return [(BATTLE_END, None, {**scores, "winner": winner, "mvp": top[0] if top else None, "top": top})]
    return [(BATTLE_UPDATE, None, {**scores, "time_left_s": _time_left(d, ts)}),
            (BATTLE_ARMIES, None, {**scores, "top": top})]


def _link(d, common, v1, ctx, forced, room, ts):
    # Euler v2 spells this message's fields in PascalCase (Scene, LinkerId, EnterContent.linkedUsersList)
    cohost = _int(_get(d, "scene", "Scene"), "scene") == 2  # Scene.CO_HOST; 4 is a multi-guest live
    enter = _dict(_get(d, "enterContent", "EnterContent"), "enterContent")
    leave = _dict(_get(d, "leaveContent", "LeaveContent"), "leaveContent")
    channel = {"channel_id": _id(_get(d, "linkerId", "LinkerId"), "linkerId")}
    out = []
    for item in _list(_get(enter, "linkedUsers", "linkedUsersList"), "linkedUsers"):
        user = read_user({}, _dict(item, "linkedUsers").get("user"))
        if user is not None:
            out.append((COHOST_JOIN if cohost else GUEST_JOIN, user, dict(channel)))
    if leave:
        user = read_user({}, {"userId": leave.get("userId")})
        if user is None:
            raise ValueError("a link leave without a user")
        out.append((COHOST_LEAVE if cohost else GUEST_LEAVE, user, dict(channel)))
    if enter and not out:
        raise ValueError("a link enter without users")
    kind = _int(_get(d, "messageType", "MessageType"), "messageType")
    return out or [(UNKNOWN, None, {"kind": f"WebcastLinkMessage:{kind}"})]


def _players(*items: Any) -> list[dict]:
    out = []
    for item in items:
        if isinstance(item, dict):
            user = read_user({}, item.get("user") if isinstance(item.get("user"), dict) else item)
            if user is not None:
                out.append(_brief(user))
    return out


def _layer(d, common, v1, ctx, forced, room, ts):
    kind = _int(d.get("messageType"), "messageType")
    join = _dict(d.get("joinDirectContent"), "joinDirectContent")
    leave = _dict(d.get("leaveContent"), "leaveContent")
    users = _players(join.get("joiner"), leave.get("leaver"))
    return [(LINKMIC_LAYER, None, {"action": _LAYER_ACTIONS.get(kind, str(kind)),
                                   "channel_id": _id(d.get("channelId"), "channelId"), "users": users})]


def _method(d, common, v1, ctx, forced, room, ts):
    kind = _int(d.get("messageType"), "messageType")
    users = _players(*[{"userId": d.get(k)} for k in ("userId", "fromUserId", "toUserId")],
                     *_list(d.get("linkedUsers"), "linkedUsers"))
    return [(LINKMIC_LAYER, None, {"action": f"method:{kind}", "channel_id": _id(d.get("channelId"), "channelId"),
                                   "users": users})]


_HANDLERS = {
    "WebcastChatMessage": _chat, "WebcastGiftMessage": _gift, "WebcastLikeMessage": _like,
    "WebcastRoomUserSeqMessage": _viewers, "WebcastMemberMessage": _member, "WebcastSocialMessage": _social,
    "WebcastSubNotifyMessage": _subscribe, "WebcastControlMessage": _control, "WebcastQuestionNewMessage": _question,
    "WebcastEmoteChatMessage": _emote, "WebcastEnvelopeMessage": _envelope, "WebcastBarrageMessage": _barrage,
    "WebcastGoalUpdateMessage": _goal, "WebcastPollMessage": _poll, "WebcastRankUpdateMessage": _rank,
    "WebcastImDeleteMessage": _im_delete, "WebcastRoomPinMessage": _pin, "WebcastLinkMicBattle": _battle,
    "WebcastLinkMicArmies": _armies_message, "WebcastLinkMessage": _link, "WebcastLinkLayerMessage": _layer,
    "WebcastLinkMicMethod": _method,
}
