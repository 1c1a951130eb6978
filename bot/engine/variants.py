"""CTA variants: an action may list ``variants:`` of its text instead of one ``text``; each firing
shows one, by rotation (the rule's firings in turn) or a seeded draw, the same in every replay
(it depends only on the rule's id and how often it fired before, which snapshots keep), and
records which in the action's data (``variant``: its index from 0; ``variants``: how many)::

    - id: follow-reminder
      every: 10m
      do:
        - cta:
            variants:
              - "Tap follow so you don't miss the next live! 💜"
              - "New here? Follow for more streams like this 🔔"
            pick: rotate          # or draw

``livebot report`` compares them (``bot/report/variants.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

PICKS = ("rotate", "draw")
MAX_VARIANTS = 20


def pick_variant(rule_id: str, pick: str, count: int, fired_before: int) -> int:
    """The variant a firing shows: ``fired_before`` is how often the rule fired before this one."""
    if pick == "draw":
        digest = hashlib.blake2b(f"{rule_id}:{fired_before}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % count
    return fired_before % count


def parse_variants(loader: Any, body: Any, spec: Any, rid: str | None, allowed: Any, needs: set[str]) -> bool:
    """Compile ``variants`` (and ``pick``) of an action into ``spec.options``; whether they were good."""
    from bot.engine.yamlfile import YList

    pos = body.value_pos.get("variants", body.pos)
    items = body.get("variants")
    if "text" in body:
        loader._problem(body.key_pos["text"], "give 'text' or 'variants', not both", rid)
        return False
    if not isinstance(items, YList) or not 2 <= len(items) <= MAX_VARIANTS:
        loader._problem(pos, f"'variants' is a list of 2 to {MAX_VARIANTS} texts, one shown per firing", rid)
        return False
    pick = body.get("pick", "rotate")
    if pick not in PICKS:
        loader._problem(body.value_pos["pick"], "'pick' is 'rotate' (in turn) or 'draw' (a seeded draw)", rid)
        return False
    texts = [loader._text(item, ipos, rid, allowed, needs) for item, ipos in zip(items, items.item_pos)]
    if any(t is None for t in texts):
        return False
    spec.options = {**spec.options, "variants": texts, "pick": pick}
    return True
