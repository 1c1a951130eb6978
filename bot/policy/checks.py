"""The checks of the policy guard, and the built-in packs that group them.

Each check has an id, a one-line description naming the policy it enforces (and where that
policy says so), a severity, and the channels it applies to: ``chat`` (say lines, polls,
quizzes), ``overlay`` (alerts, shout-outs, calls to action, the leaderboard), ``tts`` (spoken
lines) and ``webhook`` (any other kind, which sinks such as webhooks, OBS or MQTT receive).

Sources (read 2026-12-04):
- CG = TikTok Community Guidelines, released 2026-08-25 (the Open Terms Archive snapshot of
  tiktok.com/community-guidelines), sections named below.
- CCC = TikTok Creator Code of Conduct (tiktok.com/creator-academy, last updated 2026-05-18),
  "Misinformation and Deceptive Behaviors".
- TikFinity FAQ = TikFinity's FAQ on "non-genuine interactions", as quoted in livebot issue #16
  (the page itself was not reachable from here).
The LIVE Monetization Guidelines (tiktok.com/live/creators/.../live_monetization_guidelines) are
referenced by CG "Accounts and Features > Monetization"; their text was not reachable from here,
so no check cites them directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CHANNELS = ("chat", "overlay", "tts", "webhook")
ALL = frozenset(CHANNELS)
SEVERITIES = ("high", "medium", "low")

# Action kinds → the channel they reach. Any other kind (a rule's own, or one a new sink adds)
# counts as every channel: an unknown kind is guarded the most, never the least.
KIND_CHANNELS: dict[str, frozenset[str]] = {
    "say": frozenset({"chat"}), "poll": frozenset({"chat", "overlay"}), "poll_result": frozenset({"chat", "overlay"}),
    "quiz": frozenset({"chat", "overlay"}), "shoutout": frozenset({"overlay", "chat"}),
    "cta": frozenset({"overlay"}), "alert": frozenset({"overlay"}), "leaderboard": frozenset({"overlay"}),
    "poll_update": frozenset({"overlay"}), "tts": frozenset({"tts", "overlay"}),
}


def channels_of(kind: str) -> frozenset[str]:
    return KIND_CHANNELS.get(kind, ALL)


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    description: str  # one line, with its source
    severity: str
    applies: frozenset[str] = ALL
    viewer: bool = True  # also masks viewer-supplied text at run time
    output: bool = True  # also checks the rules' own text at load


CHECKS: dict[str, Check] = {c.id: c for c in (
    Check("gift-for-favour",
          "gifts or likes traded for a favour ('send 10 roses and I'll follow back', 'gift to unlock'): "
          "CCC 'Misinformation and Deceptive Behaviors' (misleading solicitation of gifts); CG 'Integrity and "
          "Authenticity > Deceptive Behaviors and Fake Engagement' (content that manipulates people into giving gifts)",
          "high"),
    Check("engagement-bait",
          "engagement bait ('tap the screen 100 times', 'spam the likes', follow-for-follow): CG 'Integrity and "
          "Authenticity > Deceptive Behaviors and Fake Engagement' (inflating likes or follows); TikFinity FAQ "
          "(non-genuine interactions)",
          "high"),
    Check("off-platform-payment",
          "payment off TikTok (Cash App / PayPal / Venmo handles and links, $cashtags, 'DM me to pay'): CG "
          "'Regulated Goods, Services, and Commercial Activities > Frauds and Scams'; CG 'Accounts and Features > "
          "TikTok LIVE > LIVE Commercial Content' (directing users off-platform)",
          "high"),
    Check("link",
          "links, domains and link shorteners: CG 'Accounts and Features > Comments' (spam: irrelevant promotions, "
          "or links) and '> External Links'",
          "medium"),
    Check("contact",
          "contact details (e-mail addresses, phone numbers, Telegram / WhatsApp / Snapchat): CG 'Privacy and "
          "Security > Personal Information'; CG 'Regulated Goods... > Frauds and Scams'",
          "medium"),
    Check("banned-word",
          "slurs and abusive words (the shipped lists and settings' policy.words / phrases): CG 'Safety and "
          "Civility'; CG 'Accounts and Features > TikTok LIVE' (the creator answers for what third-party tools "
          "such as voice-to-text or on-screen comment displays show or say)",
          "high", output=True),
    Check("repetition",
          "the same bot line over and over (a chat timer faster than once a minute; at run time a say, shout-out "
          "or TTS line more than policy.repeat.max times per policy.repeat.window): CG 'Accounts and Features > "
          "Comments' (spam); CG 'Deceptive Behaviors and Fake Engagement' (automation tools)",
          "medium", viewer=False),
    # strict only
    Check("follow-like-request",
          "asking for follows, likes or taps in bot output ('tap follow', 'follow for...', 'leave a like'): "
          "TikFinity FAQ (a stream may be flagged for non-genuine interactions when 'follow' / 'like' requests "
          "appear on screen); CG 'Deceptive Behaviors and Fake Engagement'",
          "low", viewer=False),
    Check("gift-request",
          "asking for gifts at all ('send gifts', 'gift me', like or gift goals with a reward): CCC 'Misinformation "
          "and Deceptive Behaviors' (solicitation of gifts)",
          "low", viewer=False),
    Check("social-handle",
          "@handles of other platforms in bot output (put your own in policy.allow): CG 'Accounts and Features > "
          "TikTok LIVE > LIVE Commercial Content' (directing users off-platform); CG 'Comments' (irrelevant "
          "promotions)",
          "low", viewer=False),
)}

PACKS: dict[str, tuple[str, ...]] = {
    "tiktok-live": ("gift-for-favour", "engagement-bait", "off-platform-payment", "link", "contact", "banned-word",
                    "repetition"),
}
PACKS["strict"] = PACKS["tiktok-live"] + ("follow-like-request", "gift-request", "social-handle")
DEFAULT_PACKS = ("tiktok-live",)

# -- patterns ---------------------------------------------------------------------------------
# Matched on the folded ``shape`` text (lower case, look-alikes mapped, digits kept).

_I_WILL = r"(?:i\s*['’]?\s*ll|i\s+will|i\s+do|we\s*['’]?\s*ll|we\s+will|you\s*['’]?\s*ll|u\s*['’]?\s*ll|you\s+get|u\s+get|get|unlock|i\s+(?:follow|dance|sing|shout))"
_GIFTS = (r"(?:roses?|gifts?|coins?|diamonds?|lions?|universes?|galax(?:y|ies)|hearts?|donuts?|tik\s*toks?|"
          r"perfumes?|hats?|gg|sunglasses|corgis?|finger\s+hearts?|ice\s+creams?)")
_N = r"(?:\d[\d,.]{0,12}k?|a|an|one|two|three|five|ten|twenty|fifty|hundred|some|more|\w{1,20})"

PATTERNS: dict[str, list[re.Pattern[str]]] = {
    "gift-for-favour": [re.compile(p) for p in (
        rf"\b(?:send|gift|drop|give|throw)(?:\s+(?:me|us))?\s+(?:\S+\s+){{0,3}}?{_GIFTS}\b[^.!?]{{0,40}}?"
        rf"\b(?:and|&|to|for|then|n|=)\s+{_I_WILL}\b",
        r"\b(?:gift|gifts|send\s+\S+|rose|roses|tap|taps|like|likes)\s+(?:to\s+)?unlock\b",
        rf"\bunlock\b[^.!?]{{0,30}}\b(?:with|by|for)\s+(?:a\s+|\S+\s+)?{_GIFTS}\b",
        rf"\b(?:if|when|once)\s+(?:you|u|someone|anyone|somebody|we\s+get)\s+(?:\S+\s+){{0,2}}?(?:send|sends|gift|gifts)\b"
        rf"[^.!?]{{0,40}}\b{_I_WILL}\b",
        rf"\b(?:follow\s*-?\s*back|shout\s*-?\s*outs?|s/o|dance|sing|unblock|dm|reply|answer)\s+(?:for|4|=)\s+"
        rf"(?:a\s+|every\s+|each\s+|any\s+)?(?:\d+\s*)?{_GIFTS}\b",
        rf"\b{_N}\s+(?:likes|taps|hearts)\s+(?:and|&|=|for|then)\s+{_I_WILL}\b",
    )],
    "engagement-bait": [re.compile(p) for p in (
        r"\btap\s+(?:on\s+)?(?:the\s+|your\s+|ur\s+|that\s+)?screens?\b",
        r"\b(?:tap|like|click|press)\s+(?:\S+\s+){0,3}?\d+\s*(?:x|times)\b",
        r"\b(?:spam|smash|flood)\s+(?:the\s+|that\s+|those\s+|ur\s+|your\s+)?(?:likes?|hearts?|taps?|like\s+button|screen)\b",
        r"\b(?:f4f|l4l|follow\s*(?:4|for)\s*follow|like\s*(?:4|for)\s*like|sub\s*(?:4|for)\s*sub)\b",
        r"\btap\s*,?\s*tap\s*,?\s*tap\b",
    )],
    "off-platform-payment": [re.compile(p) for p in (
        r"(?<![\w$])\$[a-z][a-z0-9_-]{1,19}\b",  # a $cashtag
        r"\b(?:dm|message|inbox|pm|text)\s+(?:me\s+)?(?:to|2|for|4)\s+(?:pay|payment|buy|order|send\s+money)\b",
        r"\b(?:pay|send|tip|donate)\s+(?:me\s+)?(?:on|via|through|with|using|at|to)\s+(?:my\s+)?"
        r"(?:cash\s*app|paypal|venmo|zelle|revolut|gcash|crypto|btc|bitcoin|usdt|bank)\b",
        r"\b(?:send|transfer|wire)\s+(?:me\s+)?(?:money|cash|crypto|btc|bitcoin|usdt)\b",
        r"\b(?:bank\s+transfer|western\s+union|moneygram|iban|wallet\s+address|btc\s+address|crypto\s+wallet)\b",
    )],
    "contact": [re.compile(p) for p in (
        r"\b(?:call|text|whatsapp|telegram|snap|add)\s+me\s+(?:at|on)\b",
    )],
    "follow-like-request": [re.compile(p) for p in (
        r"\b(?:tap|hit|press|smash|click)\s+(?:the\s+|that\s+)?(?:follow|like|heart|subscribe)\b",
        r"\bfollow\s+(?:me|us|for|the\s+stream|now|so)\b",
        r"\b(?:don['’]?t|do\s+not)\s+forget\s+to\s+(?:follow|like|tap)\b",
        r"\bleave\s+a\s+(?:like|follow)\b",
        r"\b(?:like|follow|share)\s+the\s+(?:live|stream)\b",
    )],
    "gift-request": [re.compile(p) for p in (
        rf"\b(?:send|drop|throw)\s+(?:me\s+|us\s+)?(?:some\s+|a\s+|more\s+|your\s+)?{_GIFTS}\b",
        r"\bgift\s+me\b",
        rf"\b(?:gift|like|tap)\s+goal\b",
    )],
}

# Brand names found inside a token's letters (after leet is undone), or two tokens run together.
BRANDS: dict[str, tuple[str, ...]] = {
    "off-platform-payment": ("cashapp", "paypal", "venmo", "revolut", "gcash", "buymeacoffee", "patreon",
                             "onlyfans", "fansly", "westernunion"),
    "link": ("bitly", "tinyurl", "linktree", "linktr", "shorturl", "rebrandly", "cuttly"),
    "contact": ("telegram", "whatsapp", "snapchat", "wechat"),
}
# Only as a whole token (too short, or a name: "Kofi" is a name, "ko-fi" is not)
BRAND_TOKENS: dict[str, frozenset[str]] = {
    "off-platform-payment": frozenset({"zelle", "ko-fi", "kofi.com", "cash.app", "venmo.com", "paypal.me"}),
    "contact": frozenset({"t.me", "wa.me"}),
}

TLDS = ("com|net|org|io|ly|gg|me|co|tv|link|xyz|app|site|shop|store|info|biz|to|cc|ru|de|uk|us|live|club|online|"
        "top|vip|fun|click|win|bet|icu|pro|tk|ml|ga|cf|gq|pw|ws|su|cn|in|br|mx|es|fr|it|nl|pl|id|ph|vn|th|tr|"
        "ua|kz|ae|sa|pk|ng|za|eu|asia|cash|money|gift|gifts|free|page|one|lol|sex|xxx|porn|cam|chat|dev|ai|"
        "am|fm|ai|gl|gd|sh|st|su|sx|la|lt|lv|ms|nu|tw|jp|kr|hk|au|ca|ch|at|be|se|no|fi|dk|cz|ro|hu|gr|pt|ie")
LINK = re.compile(rf"(?:(?:https?|hxxps?)://\S+|\bwww\.\S+|(?<![\w@.-])[a-z0-9][a-z0-9-]{{0,62}}(?:\.[a-z0-9-]{{1,63}}){{0,6}}\.(?:{TLDS})"
                  rf"(?![a-z0-9])(?:[/:?#]\S*)?)")
EMAIL = re.compile(rf"[a-z0-9._%+-]{{1,64}}@[a-z0-9-]{{1,63}}(?:\.[a-z0-9-]{{1,63}}){{0,6}}\.[a-z]{{2,24}}")
PHONE = re.compile(r"(?<![\d])\+?\d[\d\s().-]{7,24}\d(?![\d])")
# Every quantifier that can meet a long run of text is bounded, so no pattern backtracks for long
# over a hostile 100,000-character nickname (tests/test_policy.py, and the rule fuzzer, found one).
HANDLE = re.compile(r"(?<![\w.])@[a-z0-9_.]{2,30}")


@dataclass(slots=True)
class PolicySettings:
    """``settings: policy:`` of the rule pack (see README "The policy guard")."""

    packs: tuple[str, ...] = DEFAULT_PACKS
    lists: tuple[str, ...] | None = None  # shipped word lists by language; None: all
    words: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)
    mask: str = "***"
    repeat_max: int | None = None  # None: not set (strict then allows 3 a window; tiktok-live no limit at run time)
    repeat_window_ms: int = 60_000
    moderation: bool = True
    mute_ms: int = 600_000
    caps_ratio: float = 0.7
    caps_min: int = 12
    chat_repeat: int = 4  # the same line this often within chat_repeat_window_ms (lines of 5+ characters)
    chat_repeat_window_ms: int = 30_000

    @property
    def repeat_limit(self) -> int | None:
        """The same bot line at most this often per ``repeat_window_ms``, at run time: as set, else
        3 with the strict pack, else none (the chat budget's ``dedup`` already drops repeats)."""
        if self.repeat_max is not None:
            return self.repeat_max
        return 3 if "strict" in self.packs else None

    @property
    def check_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for pack in self.packs:
            for cid in PACKS.get(pack, ()):
                seen[cid] = None
        return tuple(seen)
