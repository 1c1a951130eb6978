"""Memory readings for the benchmarks."""

from __future__ import annotations


def rss_mb() -> float:
    """This process's resident set size (MB), from /proc (0 where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
