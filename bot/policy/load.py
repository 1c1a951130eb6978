"""The policy at load: ``settings: policy:`` parsed, and rule texts checked for ``livebot validate``."""

from __future__ import annotations

import re
from typing import Any, Callable

from bot.engine.durations import parse_duration
from bot.policy.checks import CHECKS, PACKS, PolicySettings, channels_of
from bot.policy.detect import Detector, shipped_lists
from bot.policy.guard import Policy, literal_parts

POLICY_KEYS = ("packs", "lists", "words", "phrases", "allow", "mask", "repeat", "moderation")
MODERATION_KEYS = ("enabled", "mute", "caps", "repeat")
REPEAT_KEYS = ("max", "window")
CHAT_TIMER_MIN_MS = 60_000  # a chat line from a timer more often than this is spam


def parse_policy(raw: Any, pos: Any, problem: Callable[[Any, str], None]) -> PolicySettings:
    """``settings: policy:`` → PolicySettings; each problem reported at its YAML position."""
    from bot.engine.yamlfile import YMap, did_you_mean

    s = PolicySettings()
    if not isinstance(raw, YMap):
        problem(pos, "'policy' must be a mapping: packs, lists, words, phrases, allow, mask, repeat, moderation")
        return s
    vp = raw.value_pos
    for key in raw:
        if key not in POLICY_KEYS:
            problem(raw.key_pos[key], f"unknown policy setting '{key}'" + did_you_mean(key, POLICY_KEYS))

    def texts(key: str) -> list[str] | None:
        v = raw.get(key)
        if v is None:
            return None
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in v):
            problem(vp[key], f"'{key}' must be a list of texts")
            return None
        return [str(x) for x in v]

    packs = texts("packs")
    if packs is not None:
        for p in packs:
            if p not in PACKS:
                problem(vp["packs"], f"unknown policy pack '{p}'" + did_you_mean(p, tuple(PACKS)))
        s.packs = tuple(p for p in packs if p in PACKS)
    lists = texts("lists")
    if lists is not None:
        known = tuple(shipped_lists())
        for lang in lists:
            if lang not in known:
                problem(vp["lists"], f"no shipped word list '{lang}' (shipped: {', '.join(known)})")
        s.lists = tuple(lists)
    s.words = texts("words") or []
    s.phrases = texts("phrases") or []
    s.allow = texts("allow") or []
    if "mask" in raw:
        if not isinstance(raw["mask"], str) or not raw["mask"].strip() or " " in raw["mask"]:
            problem(vp["mask"], "'mask' is a short text without spaces, such as ***")
        else:
            s.mask = raw["mask"]

    def sub(key: str, known: tuple[str, ...]) -> Any:
        m = raw.get(key)
        if m is None:
            return None
        if not isinstance(m, YMap):
            problem(vp[key], f"'{key}' must be a mapping: {', '.join(known)}")
            return None
        for k in m:
            if k not in known:
                problem(m.key_pos[k], f"unknown {key} setting '{k}'" + did_you_mean(k, known))
        return m

    def duration(m: Any, key: str) -> int | None:
        try:
            ms = parse_duration(m[key])
        except (ValueError, OverflowError) as exc:
            problem(m.value_pos[key], str(exc))
            return None
        if not 0 < ms <= 7 * 86_400_000:
            problem(m.value_pos[key], f"'{key}' must be between 1ms and 7 days")
            return None
        return ms

    def whole(m: Any, key: str, low: int) -> int | None:
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            problem(m.value_pos[key], f"'{key}' must be a whole number of at least {low}")
            return None
        return v

    rep = sub("repeat", REPEAT_KEYS)
    if rep is not None:
        if "max" in rep and (v := whole(rep, "max", 1)) is not None:
            s.repeat_max = v
        if "window" in rep and (v := duration(rep, "window")) is not None:
            s.repeat_window_ms = v
    mod = sub("moderation", MODERATION_KEYS)
    if mod is not None:
        if "enabled" in mod:
            if not isinstance(mod["enabled"], bool):
                problem(mod.value_pos["enabled"], "'enabled' must be true or false")
            else:
                s.moderation = mod["enabled"]
        if "mute" in mod and (v := duration(mod, "mute")) is not None:
            s.mute_ms = v
        if "repeat" in mod and (v := whole(mod, "repeat", 0)) is not None:
            s.chat_repeat = v
        if "caps" in mod:
            c = mod["caps"]
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c <= 1:
                problem(mod.value_pos["caps"], "'caps' is the share of capital letters that makes a flood, "
                                               "e.g. 0.7 (more than 0, at most 1)")
            else:
                s.caps_ratio = float(c)
    return s


def build_policy(settings: PolicySettings | None, literals: list[str], texts: list, timers: list) -> Policy:
    policy = Policy(settings, literals)
    policy.texts = texts
    policy.timers = timers
    return policy


def _excerpt(text: str, limit: int = 60) -> str:
    text = " ".join(text.replace("§", "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def findings(policy: Policy, pack: str | None = None, lines: dict[str, list[str]] | None = None) -> list[str]:
    """Every risky rule text as ``file:line:col: policy <id>: <why>``, for the settings' packs
    (or ``pack`` instead of them), in file order."""
    settings = policy.settings
    if pack is not None:
        from dataclasses import replace

        settings = replace(settings, packs=(pack,))
    detector = policy.detector if pack is None else Detector(settings)
    output_checks = frozenset(c for c in detector.checks if CHECKS[c].output)
    out: list[tuple[tuple[str, int, int], str]] = []
    for pos, kind, rid, source in policy.texts:
        checks = frozenset(c for c in output_checks if CHECKS[c].applies & channels_of(kind))
        if not checks:
            continue
        literal = literal_parts(source)
        starts = [m.start() for m in re.finditer(r"\S+", literal)]
        taken: list[tuple[str, frozenset[int]]] = []
        for f in detector.scan(literal, checks):
            if any(c == f.check and t & f.tokens for c, t in taken):
                continue  # one report per stretch of text and check
            taken.append((f.check, f.tokens))
            first = min(f.tokens)
            offset = starts[first] if first < len(starts) else 0
            line, col = _position(pos, source, offset, lines)
            raw = " ".join(literal.split()[i] for i in sorted(f.tokens) if i < len(literal.split()))
            check = CHECKS[f.check]
            why = (f"{_excerpt(raw)!r} in {kind} text of rule {rid or '?'} ({check.severity}): "
                   f"{check.description}")
            out.append(((str(pos.file), line, col), f"{pos.file}:{line}:{col}: policy {f.check}: {why}"))
    if "repetition" in detector.checks:
        for pos, rid, every_ms, kinds in policy.timers:
            chatty = sorted(k for k in kinds if "chat" in channels_of(k) or "tts" in channels_of(k))
            if chatty and every_ms < CHAT_TIMER_MIN_MS:
                check = CHECKS["repetition"]
                out.append(((str(pos.file), pos.line, pos.col),
                            f"{pos}: policy repetition: rule {rid} says {', '.join(chatty)} every {every_ms / 1000:g}s, "
                            f"more often than once a minute ({check.severity}): {check.description}"))
    order: dict[str, int] = {}
    out.sort(key=lambda x: (order.setdefault(x[0][0], len(order)), x[0][1], x[0][2]))
    return [text for _, text in out]


def _position(pos: Any, source: str, offset: int, lines: dict[str, list[str]] | None) -> tuple[int, int]:
    """Where ``source[offset]`` is in the file: a one-line scalar's column, counting its opening
    quote; else the line within a block scalar."""
    if "\n" not in source:
        col = pos.col + offset
        if lines is not None:
            text = lines.get(str(pos.file))
            if text is not None and 0 < pos.line <= len(text):
                row = text[pos.line - 1]
                if pos.col - 1 < len(row) and row[pos.col - 1] in "\"'":
                    col += 1
        return pos.line, col
    before = source[:offset]
    return pos.line + before.count("\n") + (1 if source.startswith("\n") else 0), pos.col


def report_findings(ruleset: Any, pack: str | None) -> bool:
    """``livebot validate``: print each finding (a warning); True when ``pack`` was asked for and
    something was found (exit 1)."""
    import sys

    policy = ruleset.policy or Policy()
    lines = _file_lines(ruleset.files)
    found = findings(policy, pack, lines)
    for line in found:
        print(line)
    if found:
        what = f"policy pack '{pack}'" if pack else f"policy pack(s) {', '.join(policy.settings.packs) or 'none'}"
        print(f"{len(found)} policy finding(s) ({what}){'' if pack else '; warnings only'}", file=sys.stderr)
    return bool(found) and pack is not None


def _file_lines(files: list[str]) -> dict[str, list[str]]:
    out = {}
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                out[f] = fh.read().splitlines()
        except OSError:
            pass
    return out
