"""Folding text to what a reader sees, so that a check matches however it is disguised.

Viewers who want a link or a slur on stream write it so a plain filter misses it: full-width
letters (``ｂｉｔ．ｌｙ``), Cyrillic or Greek look-alikes (``раураl``), zero-width characters
between letters, leetspeak (``fr33 c01ns``), letters spaced out (``f r e e``), and links split
with spaces or spelled ``dot``. Each step below undoes one of these:

1. NFKC (full-width and other compatibility forms become plain letters and digits);
2. format characters (``Cf``: zero-width spaces and joiners, direction marks) removed, and
   combining marks (accents, Zalgo) dropped after NFKD, so ``é`` reads as ``e``;
3. case folded, then a confusables map (Cyrillic, Greek, small capitals, dotted and circled
   forms, the ideographic full stop) to the Latin letter they imitate;
4. for word matching only: a leet map (``0→o 1→i 3→e 4→a 5→s 7→t @→a $→s``) and runs of one-letter
   pieces joined (``f.r.e.e`` → ``free``).

Two forms come out: ``shape`` keeps digits and punctuation (links, e-mail addresses, ``$cashtags``
and phone numbers are found there); ``words`` is letters only, leet undone (word lists are matched
there). Both are computed per token, so a finding maps back to the tokens of the original text
that carry it (``Folded.tokens``), and exactly those are masked.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Look-alikes that NFKC leaves alone: Cyrillic, Greek, small capitals, Latin variants, punctuation.
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ս": "u", "ց": "g", "ք": "p", "օ": "o",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ς": "s", "σ": "o", "μ": "u", "λ": "l",
    # small capitals and other Latin variants
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ǫ": "q", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d",
    "ħ": "h", "ŧ": "t", "ß": "ss", "æ": "ae", "œ": "oe", "ð": "d", "þ": "th",
    # dots and slashes that are not ASCII
    "。": ".", "｡": ".", "․": ".", "‧": ".", "·": ".", "•": ".", "∙": ".", "⋅": ".", "﹒": ".", "⁄": "/",
    "∕": "/", "⧸": "/", "＠": "@", "﹫": "@",
}
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
                       "@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "¢": "c"})
_LETTERS = re.compile(r"[^\w]|[\d_]", re.UNICODE)
# "dot" written out, or a dot in brackets: bit(dot)ly, bit [.] ly, bit dot ly
_DOT_WORDS = re.compile(r"\s*(?:[\(\[\{<]\s*(?:dot|\.)\s*[\)\]\}>]|\b(?:dot|punto|ponto|punkt|nokta|titik)\b)\s*")
_SPACED_PUNCT = re.compile(r"\s*([./:@])\s*")


@lru_cache(maxsize=65536)
def fold_char_run(token: str) -> str:
    """One token: NFKC, format characters and combining marks dropped, case folded, look-alikes mapped."""
    s = unicodedata.normalize("NFKC", token)
    if not s.isascii():
        s = "".join(c for c in unicodedata.normalize("NFKD", s)
                    if unicodedata.category(c) not in ("Cf", "Mn", "Me", "Cc"))
    s = s.casefold()
    if not s.isascii():
        s = "".join(_CONFUSABLES.get(c, c) for c in s)
    return s


def letters(shape: str) -> str:
    """The letters of a folded token with leet undone (``fr33`` → ``free``)."""
    return _LETTERS.sub("", shape.translate(_LEET))


@dataclass(slots=True)
class Folded:
    """A text split on whitespace, each token folded. ``shape`` joins the shapes with one space;
    ``starts`` is each token's offset in ``shape`` (so a match maps back to tokens)."""

    raw: list[str]
    shapes: list[str]
    words: list[str]
    shape: str
    starts: list[int]

    def tokens_at(self, start: int, end: int) -> set[int]:
        """The tokens that the span ``shape[start:end]`` touches."""
        out = set()
        for i, s in enumerate(self.starts):
            e = s + len(self.shapes[i])
            if s < end and e > start:
                out.add(i)
        return out


_SPLIT = re.compile(r"\S+")


@lru_cache(maxsize=16384)
def fold(text: str) -> Folded:
    """Fold a whole text (cached: nicknames and stock lines repeat all stream long)."""
    raw = _SPLIT.findall(text)
    shapes = [fold_char_run(t) for t in raw]  # a token of format characters only folds to ""
    starts, pos = [], 0
    for s in shapes:
        starts.append(pos)
        pos += len(s) + 1
    return Folded(raw, shapes, [letters(s) for s in shapes], " ".join(shapes), starts)


def joined_letters(folded: Folded) -> str:
    """Every token's letters run together: ``f r e e  c o i n s`` → ``freecoins``."""
    return "".join(folded.words)


def link_shape(shape: str) -> str:
    """A folded text with links put back together: ``bit dot ly / x`` → ``bit.ly/x``."""
    s = _DOT_WORDS.sub(".", shape)
    return _SPACED_PUNCT.sub(r"\1", s)


def squeeze(word: str) -> str:
    """Runs of a repeated letter as one letter (``fuuuun`` → ``fun``)."""
    return re.sub(r"(.)\1+", r"\1", word)
