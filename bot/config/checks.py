"""What the commands take from a loaded ``Config``: the room's name (``room_name``), the Engine's
options (``engine_options``, the same for ``run`` and ``replay``), and ``check_for_run``, what
``livebot run`` needs beyond a well-formed file (a source, and what that source and the enabled
sinks and integrations need).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from bot.config.model import SOURCE_TYPES, Config


def room_name(cfg: Config) -> str:
    """This stream's name for its state and recordings: ``room_id``, else the source type."""
    return cfg.room_id or cfg.source.type or "live"


def engine_options(cfg: Config) -> dict[str, Any]:
    """The Engine's settings from the config; the same for `run` and `replay -c`, so a replay of a
    recorded stream fires the same actions (the overlay's live poll counts and board included)."""
    return {"streak_silence_ms": cfg.streak_silence_ms, "dedup_window": cfg.dedup_window,
            "poll_update_ms": cfg.overlay_poll_updates_ms if cfg.overlay_enabled else 0,
            "board_size": cfg.overlay_board if cfg.overlay_enabled else 0}


def check_for_run(cfg: Config, where: str) -> list[str]:
    """What ``livebot run`` needs beyond a well-formed file: a source, and what that source needs."""
    src = cfg.source
    if cfg.chat_enabled and (not cfg.chat_session_id or not src.tiktok.unique_id.strip("@ ")):
        return [f"{where}: 'sinks.chat' needs 'session_id' (or LIVEBOT_SESSION_ID) and 'source.tiktok.unique_id'"]
    if cfg.overlay_enabled and not cfg.http_enabled:
        return [f"{where}: 'sinks.overlay' is served by the HTTP server: enable 'http' or set 'sinks.overlay.enabled: false'"]
    if cfg.http_enabled:
        from bot.control.guard import check_bind, token_from_env

        if (problem := check_bind(cfg.http_host, token_from_env())) is not None:
            return [f"{where}: {problem}"]
    if cfg.report_folder is not None and cfg.record is None:
        return [f"{where}: 'report.folder' needs 'record.folder': a report is made from the stream's recording"]
    taken = [w.name for w in cfg.webhooks if w.name in ("obs", "streamerbot", "rcon", "mqtt")
             and getattr(cfg.integrations, w.name).enabled]
    if taken:
        return [f"{where}: the webhook named '{taken[0]}' has the name of the enabled integration: rename it"]
    if cfg.integrations.rcon.enabled and importlib.util.find_spec("rcon") is None:
        return [f"{where}: 'integrations.rcon' needs the rcon package (GPLv3, optional): pip install 'livebot[rcon]'"]
    if cfg.integrations.rcon.enabled and not cfg.integrations.rcon.allow:
        return [f"{where}: 'integrations.rcon.allow' is empty: list the commands rules may run (such as [summon, say])"]
    if src.type is None:
        return [f"{where}: 'source.type' is required for run (one of: {', '.join(SOURCE_TYPES)})"]
    if src.type == "tiktok" and not src.tiktok.unique_id.strip("@ "):
        return [f"{where}: 'source.tiktok.unique_id' is required (the creator's @handle)"]
    if src.type == "webhook" and not src.webhook.secret and not src.webhook.allow_unsigned:
        return [f"{where}: the webhook source needs 'source.webhook.secret' (or LIVEBOT_WEBHOOK_SECRET); "
                "set 'allow_unsigned: true' only on a trusted network"]
    return []
