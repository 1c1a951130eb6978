"""Where each concern lives: the state store does not reach into the Redis scale-out package,
and there is one engine snapshot module (``bot.engine.snapshot``, the full snapshot included)."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def imported_modules(folder: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[str(path.relative_to(BOT.parent))] = names
    return out


def test_the_store_does_not_import_the_scale_package():
    offenders = {f: sorted(m for m in mods if m == "bot.scale" or m.startswith("bot.scale."))
                 for f, mods in imported_modules(BOT / "store").items()}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_one_snapshot_module():
    from bot.engine import snapshot

    assert callable(snapshot.full_snapshot) and callable(snapshot.full_restore)
    assert not (BOT / "scale" / "fullsnap.py").exists()
