"""How kbench writes numbers: rates, ratios, shares and durations, in one place.

pyperf keeps every unit's formatter in its ``_formatter.py`` and every other
module delegates; so does kbench. Measurement and statistics never format;
the summary, reports and CLI call these.
"""

from __future__ import annotations

import math

# Rates at or above this many per second are written as whole numbers with
# thousands separators (12,345); below it, three significant digits (45.6).
WHOLE_RATE_FROM = 100


def rate(value: float) -> str:
    """A throughput without its unit: ``"12,345"``, or ``"45.6"`` below 100."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= WHOLE_RATE_FROM else f"{value:.3g}"


def rate_ci(median: float, low: float, high: float) -> str:
    """``"12,345 [11,900, 12,800]"``: a median rate and its confidence interval."""
    return f"{rate(median)} [{rate(low)}, {rate(high)}]"


def summary(summary) -> str:
    """A :class:`kbench.stats.Summary` as ``"12,345 [11,900, 12,800] cv 2.1%"``."""
    return f"{rate_ci(summary.median, summary.ci_low, summary.ci_high)} cv {share(summary.cv)}"


def ratio(value: float, low: float | None = None, high: float | None = None) -> str:
    """``"1.02x"``, or with its CI ``"1.02x [0.99, 1.05]"``."""
    text = f"{value:.2f}x"
    if low is None or high is None:
        return text
    return f"{text} [{low:.2f}, {high:.2f}]"


def share(value: float, digits: int = 1) -> str:
    """A fraction as a percentage: ``share(0.057) == "5.7%"``; ``digits`` after the point."""
    return f"{value:.{digits}%}"


def seconds(value: float) -> str:
    """A duration: ``"1.23 s"``, ``"45.6 ms"`` or ``"789 us"``."""
    if value >= 1 or value == 0:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def milliseconds(value: float) -> str:
    """Seconds written as milliseconds with two decimals: ``"1.23"`` (no unit)."""
    return f"{value * 1e3:.2f}"


# Sizes are shown in megabytes (10**6 bytes) from this size up, below it in kilobytes.
MEGABYTE = 10**6


def size(size_bytes: int) -> str:
    """A size in bytes, decimal units: ``"30.1 MB"``, ``"1.2 kB"``."""
    if size_bytes >= MEGABYTE:
        return f"{size_bytes / MEGABYTE:.1f} MB"
    return f"{size_bytes / 1000:.1f} kB"


def slope(bytes_per_call: float) -> str:
    """A memory slope: ``"+6.1 MB"``, ``"-0.2 MB"`` (it fell)."""
    return ("+" if bytes_per_call >= 0 else "-") + size(abs(bytes_per_call))


def counters(found) -> str:
    """A step's exact counters (kbench.counters.Counters) summed over its compiled
    functions: ``"3 traces, 1072 nodes"``, ``", 1 XLA"`` added for XLA steps; ``"n/a"``
    for None (not measured)."""
    if found is None:
        return "n/a"
    text = f"{sum(found.traces.values())} traces, {sum(found.graph_nodes.values())} nodes"
    return text if found.xla_compilations is None else f"{text}, {found.xla_compilations} XLA"


def startup(startup_s: float | None, split=None) -> str:
    """A startup and its parts (kbench.record.StartupSplit.parts) in seconds:
    ``"0.10 + 0.20 + 0.15 -> 450 ms"``; the total alone without a split; ``"n/a"``
    without a startup."""
    if startup_s is None:
        return "n/a"
    if split is None:
        return seconds(startup_s)
    return " + ".join(f"{value:.2f}" for value in split.parts().values()) + \
        f" -> {seconds(startup_s)}"
