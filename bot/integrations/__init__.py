"""The creator's other tools as sinks: OBS Studio, Streamer.bot, game servers over RCON, MQTT.

Each is a rule action kind (or a few) and a sink with its own queue, retries, dead letters,
pacing and cap (``bot.integrations.base``), configured under ``integrations:`` in config.yaml.
``livebot check`` (``bot.integrations.check``) connects to each once and says what it found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Config
    from bot.integrations.base import IntegrationSink

NAMES = ("obs", "streamerbot", "rcon", "mqtt")  # the sink names (each integration is one sink)


def enabled_names(cfg: Config) -> list[str]:
    return [name for name in NAMES if getattr(cfg.integrations, name).enabled]


def build_integrations(cfg: Config, only: str | None = None) -> list[IntegrationSink]:
    """A sink for each enabled integration (or only the one called ``only``). Nothing connects yet."""
    out: list[IntegrationSink] = []
    ic = cfg.integrations
    for name in enabled_names(cfg):
        if only is not None and name != only:
            continue
        c = getattr(ic, name)
        common = {"min_gap_s": c.min_gap_ms / 1000, "max_per_minute": c.max_per_minute,
                  "timeout_s": max(c.timeout_ms, 1) / 1000}
        if name == "obs":
            from bot.integrations.obs import ObsSink

            out.append(ObsSink(c.url, c.password, **common))
        elif name == "streamerbot":
            from bot.integrations.streamerbot import StreamerbotSink

            out.append(StreamerbotSink(c.url, c.password, **common))
        elif name == "rcon":
            from bot.integrations.rcon import RconSink

            out.append(RconSink(c.host, c.port, c.password, allow=c.allow, **common))
        elif name == "mqtt":
            from bot.integrations.mqtt import MqttSink

            out.append(MqttSink(c.host, c.port, username=c.username, password=c.password,
                                topic_prefix=c.topic_prefix, qos=c.qos, **common))
    return out


async def start_integrations(sinks: list) -> None:
    """Connect every integration among ``sinks`` at once; one that is down is a warning with its
    name (``integration_not_ready``), never a crash: its actions are retried, then dead-lettered."""
    import asyncio

    from bot.integrations.base import IntegrationSink

    starting = [s.start() for s in sinks if isinstance(s, IntegrationSink)]
    if starting:
        await asyncio.gather(*starting)
