"""livebot: YAML rules over a TikTok LIVE event stream.

The flow, one folder each: sources -> events -> engine -> actions -> sinks.
"""

__version__ = "0.1.0"
