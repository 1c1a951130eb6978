"""Finding what a text carries: each check's matches, as the tokens of the text that carry them."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bot.policy.checks import (BRAND_TOKENS, BRANDS, EMAIL, HANDLE, LINK, PATTERNS, PHONE, PolicySettings)
from bot.policy.normalize import Folded, fold, fold_char_run, letters, squeeze

WORDS_DIR = Path(__file__).parent / "words"
_DOT_TOKENS = frozenset({"dot", "(dot)", "[dot]", "{dot}", "<dot>", "[.]", "(.)", "{.}", ".", "punto", "ponto",
                         "punkt", "nokta", "titik"})
_JOINERS = "./:@"
_INNER_DOT = re.compile(r"[\(\[\{<]\s*(?:dot|\.)\s*[\)\]\}>]")  # bit(dot)ly, bit[.]ly
# after "word." and a space, only these are taken as the rest of a link ("bit. ly"); "ok. me too" is not one
_JOIN_TLDS = frozenset({"com", "net", "org", "ly", "io", "xyz", "ru", "biz", "cc", "link", "tk"})


@dataclass(slots=True)
class Finding:
    check: str
    tokens: frozenset[int]
    what: str  # a short description, never the viewer's text itself


def shipped_lists() -> dict[str, list[str]]:
    """The shipped word lists, by language code (file stem)."""
    out = {}
    for f in sorted(WORDS_DIR.glob("*.txt")):
        out[f.stem] = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines()
                       if ln.strip() and not ln.lstrip().startswith("#")]
    return out


def _spans(pieces: list[str], rx: re.Pattern[str], sep: str = " ", joined: str | None = None,
           starts: list[int] | None = None) -> list[frozenset[int]]:
    """Run ``rx`` over the pieces joined by ``sep``; each match as the set of pieces it touches."""
    if joined is None or starts is None:
        joined = sep.join(pieces)
        starts, pos = [], 0
        for p in pieces:
            starts.append(pos)
            pos += len(p) + len(sep)
    out = []
    for m in rx.finditer(joined):
        s, e = m.span()
        first = max(bisect_right(starts, s) - 1, 0)
        hit = set()
        for i in range(first, len(starts)):
            if starts[i] >= e:
                break
            if starts[i] + len(pieces[i]) > s:
                hit.add(i)
        hit = frozenset(hit)
        if hit:
            out.append(hit)
    return out


def _compact(f: Folded) -> tuple[str, list[int]]:
    """The shapes run together where a link was split (``bit . ly``, ``bit dot ly``, ``bit. ly``),
    else one space apart; with the token each character came from."""
    chars: list[str] = []
    owner: list[int] = []
    prev = ""
    for i, s in enumerate(f.shapes):
        piece = "." if s in _DOT_TOKENS else _INNER_DOT.sub(".", s)
        glued = prev.endswith(tuple(_JOINERS))
        if glued and prev.endswith(".") and len(prev) > 1 and not piece.startswith(tuple(_JOINERS)):
            # "word. next": a sentence end, unless what follows is a top-level domain links use
            glued = re.split(r"[/?#:]", piece, maxsplit=1)[0].rstrip(".,!?") in _JOIN_TLDS
        if chars and not (glued or piece.startswith(tuple(_JOINERS))
                          or f.shapes[i - 1] in _DOT_TOKENS or s in _DOT_TOKENS
                          or (len(prev) == 1 and len(piece) == 1 and prev.isalnum() and piece.isalnum())):
            chars.append(" ")
            owner.append(-1)
        chars.extend(piece)
        owner.extend([i] * len(piece))
        prev = piece
    return "".join(chars), owner


def _compact_hits(compact: str, owner: list[int], rx: re.Pattern[str]) -> list[frozenset[int]]:
    out = []
    for m in rx.finditer(compact):
        hit = frozenset(owner[k] for k in range(*m.span()) if owner[k] >= 0)
        if hit:
            out.append(hit)
    return out


_PATTERNS = {check: re.compile("|".join(f"(?:{rx.pattern})" for rx in rxs)) for check, rxs in PATTERNS.items()}
_BRANDS_RX = {check: re.compile("|".join(brands)) for check, brands in BRANDS.items()}


MAX_WORD = 24
_WITH_HANDLE = frozenset({"off-platform-payment", "contact"})
_HANDLE_TOKEN = re.compile(r"^[:(\[]*[@$][\w.-]{1,30}[)\].,!?:;]*$|^[\w.-]*@[\w.-]+$")


def _with_handles(f: Folded, hit: frozenset[int]) -> frozenset[int]:
    """A hit with the @handles or $cashtags right beside it (one token each way, past a ':')."""
    out = set(hit)
    lo, hi = min(hit), max(hit)
    for j in (lo - 1, hi + 1, hi + 2):
        if 0 <= j < len(f.shapes) and _HANDLE_TOKEN.match(f.shapes[j]):
            if j == hi + 2 and f.shapes[hi + 1] not in (":", "-", "is", "at", "@"):
                continue
            out.add(j)
    return frozenset(out)


def _is_phone(text: str) -> bool:
    """9 to 15 digits in groups of two or more ("555 123 4567", "+1 (555) 123-4567"), not a count
    list such as "2. (820) · 3. (500)" (one-digit groups), nor a number with a thousands comma."""
    groups = re.findall(r"\d+", text)
    digits = sum(map(len, groups))
    if not 9 <= digits <= 15:
        return False
    first_ok = len(groups[0]) >= 2 or text.lstrip().startswith("+") or digits >= 11
    return first_ok and all(len(g) >= 2 for g in groups[1:])


class Detector:
    """Everything a pack looks for, compiled once from the settings."""

    def __init__(self, settings: PolicySettings) -> None:
        self.settings = settings
        self.checks = frozenset(settings.check_ids)
        lists = shipped_lists()
        entries: list[str] = []
        for lang, words in lists.items():
            if settings.lists is None or lang in settings.lists:
                entries += words
        entries += settings.words
        self.words: set[str] = set()
        self.squeezed: set[str] = set()
        self.prefixes: list[str] = []
        phrases = list(settings.phrases)
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            if " " in entry.strip("* "):
                phrases.append(entry.rstrip("*"))
                continue
            word = letters(fold_char_run(entry.rstrip("*")))
            if not word:
                continue
            if entry.endswith("*"):
                self.prefixes.append(word)
                self.words.add(word)  # the stem itself, for words split in two ("fu ck")
            else:
                self.words.add(word)
                self.squeezed.add(squeeze(word))
        self.prefixes = sorted(set(self.prefixes))
        self._prefix_rx = re.compile("^(?:" + "|".join(map(re.escape, self.prefixes)) + ")") if self.prefixes else None
        self._squeezed_prefix_rx = (re.compile("^(?:" + "|".join(sorted({re.escape(squeeze(p)) for p in self.prefixes}))
                                               + ")") if self.prefixes else None)
        folded_phrases = [" ".join(letters(fold_char_run(w)) for w in p.split()) for p in phrases]
        folded_phrases = [p for p in folded_phrases if p.strip()]
        self._phrase_rx = (re.compile(r"\b(?:" + "|".join(r"\s+".join(map(re.escape, p.split())) for p in folded_phrases)
                                      + r")\b") if folded_phrases else None)
        self.allow = [a for a in (self._allow_form(a) for a in settings.allow) if a]

    @staticmethod
    def _allow_form(text: str) -> str:
        return " ".join(fold(text).shapes)

    # -- words -----------------------------------------------------------------------------

    def _is_banned(self, word: str) -> bool:
        if len(word) < 2:
            return False
        if word in self.words or (self._prefix_rx is not None and self._prefix_rx.match(word)):
            return True
        if re.search(r"(.)\1\1", word):  # stretched: fuuuuck
            sq = squeeze(word)
            return sq in self.squeezed or (self._squeezed_prefix_rx is not None
                                           and bool(self._squeezed_prefix_rx.match(sq)))
        return False

    def _word_hits(self, f: Folded) -> list[frozenset[int]]:
        out = []
        words = f.words
        for i, w in enumerate(words):
            if self._is_banned(w):
                out.append(frozenset({i}))
            elif i + 1 < len(words) and 0 < len(w) <= 4 and (w + words[i + 1]) in self.words \
                    and not self._is_banned(words[i + 1]):
                out.append(frozenset({i, i + 1}))  # split in two: "fu ck"
        # letters spaced out: f u c k, f.u.c.k (one token each, or one token of dotted letters)
        i = 0
        while i < len(words):
            j = i
            while j < len(words) and len(words[j]) == 1:
                j += 1
            if j - i >= 3:
                run = "".join(words[i:j])
                for a in range(i, j):
                    for b in range(min(j, a + MAX_WORD), a + 2, -1):  # a word is at most MAX_WORD letters
                        if self._is_banned("".join(words[a:b])):
                            out.append(frozenset(range(a, b)))
                            break
                del run
            i = max(j, i + 1)
        if self._phrase_rx is not None:
            out += _spans(words, self._phrase_rx)
        return out

    # -- the scan --------------------------------------------------------------------------

    def scan(self, text: str, checks: frozenset[str] | None = None) -> tuple[Finding, ...]:
        """Every finding of ``checks`` (default: the pack's) in ``text``."""
        return _scan_cached(self, text, self.checks if checks is None else checks)

    def _scan(self, text: str, checks: frozenset[str]) -> tuple[Finding, ...]:
        f = fold(text)
        if not f.shapes:
            return ()
        out: list[Finding] = []

        seen: set[tuple[str, frozenset[int]]] = set()

        def add(check: str, hits: list[frozenset[int]], what: str) -> None:
            if check in _WITH_HANDLE:  # "venmo @ana-22", "telegram: @x": the handle goes with the brand
                hits = [_with_handles(f, h) for h in hits]
            for h in hits:
                if (check, h) not in seen and not self._allowed(f, h):
                    seen.add((check, h))
                    out.append(Finding(check, h, what))

        compact = owner = None
        if checks & {"link", "contact", "off-platform-payment", "social-handle"}:
            compact, owner = _compact(f)
        if "link" in checks:
            add("link", _compact_hits(compact, owner, LINK), "a link")
        if "contact" in checks:
            add("contact", _compact_hits(compact, owner, EMAIL), "an e-mail address")
            for m in PHONE.finditer(f.shape):
                if _is_phone(m.group()):
                    st, en = m.span()
                    add("contact", [frozenset(i for i, s0 in enumerate(f.starts)
                                              if s0 < en and s0 + len(f.shapes[i]) > st)], "a phone number")
        if "social-handle" in checks:
            add("social-handle", _compact_hits(compact, owner, HANDLE), "an @handle")
        for check, rx in _PATTERNS.items():
            if check in checks:
                add(check, _spans(f.shapes, rx, joined=f.shape, starts=f.starts), check.replace("-", " "))
        any_letters = "".join(f.words)
        for check, brands in BRANDS.items():
            if check in checks and (_BRANDS_RX[check].search(any_letters.replace("dot", "") + any_letters)
                                    or any(sh.strip(".,!?;:") in BRAND_TOKENS.get(check, ()) for sh in f.shapes)):
                hits = []
                ws = f.words
                for i, w in enumerate(ws):
                    if any(b in w or b in w.replace("dot", "") for b in brands):
                        hits.append(frozenset({i}))
                    elif i + 1 < len(ws) and any(b in w + ws[i + 1] and b not in ws[i + 1] for b in brands):
                        hits.append(frozenset({i, i + 1}))
                    elif f.shapes[i].strip(".,!?;:") in BRAND_TOKENS.get(check, ()):
                        hits.append(frozenset({i}))
                # spelled out letter by letter: p a y p a l
                run: list[int] = []
                for i, w in enumerate(ws + [""]):
                    if len(w) == 1:
                        run.append(i)
                        continue
                    if len(run) >= 4 and any(b in "".join(ws[k] for k in run) for b in brands):
                        hits.append(frozenset(run))
                    run = []
                add(check, hits, check.replace("-", " "))
        if "banned-word" in checks:
            add("banned-word", self._word_hits(f), "a banned word")
        return tuple(out)

    def _allowed(self, f: Folded, hit: frozenset[int]) -> bool:
        """A finding made only of allow-listed text (the creator's own handle, site or words)."""
        if not self.allow:
            return False
        span = " ".join(f.shapes[i] for i in sorted(hit))
        bare = span.strip(".,!?;:()[]\"'")
        return any(bare == a or bare in a or (a in span and len(a) >= len(bare) - 2) for a in self.allow)


@lru_cache(maxsize=32768)
def _scan_cached(detector: Detector, text: str, checks: frozenset[str]) -> tuple[Finding, ...]:
    return detector._scan(text, checks)
