"""The OBS overlay: a page served on localhost that shows alerts, polls, the top gifters and a
call-to-action banner, and speaks ``tts`` actions. Add ``OverlaySink().url`` as a browser source.

    sink = OverlaySink(port=8791)          # or OverlaySink(OverlayServer(...)) mounted elsewhere
    await sink.start()                     # then hand it to the dispatcher like any sink
"""

from bot.sinks.overlay.server import DEFAULT_PORT, OverlayServer
from bot.sinks.overlay.sink import OverlaySink
from bot.sinks.overlay.tts import TtsLimiter
from bot.sinks.overlay.views import OVERLAY_KINDS, OverlayState

__all__ = ["DEFAULT_PORT", "OVERLAY_KINDS", "OverlayServer", "OverlaySink", "OverlayState", "TtsLimiter"]
