"""PNG plots of a comparison matrix, for the report documents.

Figures are built with matplotlib's object-oriented API on an Agg canvas:
no pyplot, no global backend switch, never a window, safe in threads and on
headless CI machines.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib import colormaps, colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from kbench.record import LATENCY_QUANTILES
from kbench.report.tables import (has_comparisons, latency_rows, ratio_grid, run_label,
                                  startup_rows)

# Resolution of the PNGs. 100 dpi keeps a 50-benchmark figure around 1-2 MB
# of pixels yet readable at the 8-point labels below when the page is zoomed.
DPI = 100
WIDTH_IN = 10.0
# Height of one horizontal bar/dot row, and of one heat-map row, in inches:
# the smallest that keeps 8-point key labels from overlapping.
ROW_IN = 0.2
HEATMAP_ROW_IN = 0.3
# Fixed height for axes, legend and title around the rows.
MARGIN_IN = 1.6
FONT_SIZE = 8
# Of each benchmark's slot on the y axis, this fraction holds its bars (one per
# run); the rest separates benchmarks.
GROUP_FILL = 0.8
# The heat-map colour scale spans at least ratios 1/1.25 .. 1.25 so that noise
# around 1.0 stays pale instead of being stretched to full red/green.
HEATMAP_MIN_SPAN = 1.25
PALETTE = colormaps["tab10"]
# Diverging map: red = slower than the baseline run, green = faster.
RATIO_CMAP = colormaps["RdYlGn"]


def _figure(n_rows: int, row_in: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH_IN, MARGIN_IN + row_in * max(n_rows, 1)), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.tick_params(labelsize=FONT_SIZE)
    return fig, ax


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" stamp: the same matrix gives the same bytes on any matplotlib.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _slot_offsets(n_runs: int) -> np.ndarray:
    """y offsets of each run's bar within a benchmark's slot, centred on 0."""
    height = GROUP_FILL / n_runs
    return (np.arange(n_runs) - (n_runs - 1) / 2) * height


def _key_axis(ax, keys) -> None:
    ax.set_yticks(range(len(keys)), keys, fontsize=FONT_SIZE)
    ax.set_ylim(len(keys) - 0.5, -0.5)  # first key on top
    ax.grid(axis="x", alpha=0.3)


def _legend(ax) -> None:
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), fontsize=FONT_SIZE, frameon=False)


def throughput_figure(matrix) -> Figure:
    """Median samples/s per benchmark (rows) and run (bars), whiskers = the median's CI."""
    keys, n_runs = matrix.keys, len(matrix.runs)
    fig, ax = _figure(len(keys) * n_runs, ROW_IN)
    offsets = _slot_offsets(n_runs)
    for i in range(n_runs):
        summaries = [matrix.cell(key, i).summary for key in keys]
        y = np.arange(len(keys)) + offsets[i]
        med = np.array([s.median for s in summaries])
        # A percentile CI can sit a hair off the sample median; whiskers cannot be negative.
        err = np.array([[max(s.median - s.ci_low, 0.0) for s in summaries],
                        [max(s.ci_high - s.median, 0.0) for s in summaries]])
        ax.barh(y, med, height=GROUP_FILL / n_runs, xerr=err, capsize=2, color=PALETTE(i % 10),
                error_kw={"elinewidth": 0.8}, label=run_label(matrix, i))
    _key_axis(ax, keys)
    ax.set_xlabel("samples/s (median of rounds; whiskers: 95% CI of the median)",
                  fontsize=FONT_SIZE)
    _legend(ax)
    return fig


def _annotate_ratios(ax, ratios: np.ndarray, significant: np.ndarray) -> None:
    for (k, i), ratio in np.ndenumerate(ratios):
        mark = "*" if significant[k, i] else ""
        ax.text(i, k, f"{ratio:.2f}x{mark}", ha="center", va="center", fontsize=FONT_SIZE,
                fontweight="bold" if mark else "normal")
        if mark:
            ax.add_patch(Rectangle((i - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="black",
                                   linewidth=1.5))


def ratio_figure(matrix) -> Figure:
    """Heat map of throughput ratios to the baseline run; framed with * where significant."""
    ratios, significant = ratio_grid(matrix)
    fig, ax = _figure(len(matrix.keys), HEATMAP_ROW_IN)
    logs = np.log2(ratios)
    span = max(math.log2(HEATMAP_MIN_SPAN), float(np.abs(logs).max()))
    image = ax.imshow(logs, cmap=RATIO_CMAP,
                      norm=colors.Normalize(-span, span), aspect="auto")
    _annotate_ratios(ax, ratios, significant)
    ax.set_yticks(range(len(matrix.keys)), matrix.keys, fontsize=FONT_SIZE)
    ax.set_xticks(range(len(matrix.runs)),
                  [run_label(matrix, i) for i in range(len(matrix.runs))],
                  rotation=20, ha="right", fontsize=FONT_SIZE)
    ticks = np.linspace(-span, span, 5)
    bar = fig.colorbar(image, ax=ax, ticks=ticks, fraction=0.04, pad=0.02)
    bar.ax.set_yticklabels([f"{2 ** t:.2f}x" for t in ticks], fontsize=FONT_SIZE)
    ax.set_title("throughput ratio to the baseline run (* framed: significant change)",
                 fontsize=FONT_SIZE + 1)
    return fig


def latency_figure(matrix) -> Figure | None:
    """Per-step latency p50 (dot) .. p90 (tick) .. p99 (bar end) per benchmark and run."""
    rows = latency_rows(matrix)
    if not rows:
        return None
    n_runs = len(matrix.runs)
    fig, ax = _figure(len(matrix.keys) * n_runs, ROW_IN)
    offsets = _slot_offsets(n_runs)
    for i in range(n_runs):
        mine = [(k, lat) for k, j, lat in rows if j == i]
        if not mine:
            continue
        y = np.array([k for k, _ in mine]) + offsets[i]
        ms = {q: np.array([getattr(lat, q) * 1e3 for _, lat in mine]) for q in LATENCY_QUANTILES}
        color = PALETTE(i % 10)
        ax.hlines(y, ms["p50"], ms["p99"], color=color, linewidth=1.2)
        ax.plot(ms["p50"], y, "o", color=color, markersize=4, label=run_label(matrix, i))
        ax.plot(ms["p90"], y, "|", color=color, markersize=7)
        ax.plot(ms["p99"], y, "|", color=color, markersize=4)
    _key_axis(ax, matrix.keys)
    ax.set_xscale("log")
    ax.set_xlabel("step latency, ms (dot p50, long tick p90, line to p99)", fontsize=FONT_SIZE)
    _legend(ax)
    return fig


# The startup plot's colour for each part (kbench.record.StartupSplit.parts).
STARTUP_COLOURS = {"setup": "#bbbbbb", "tracing": PALETTE(1), "compile": PALETTE(3),
                   "trace+compile": PALETTE(4)}


def startup_figure(matrix) -> Figure | None:
    """Each benchmark's startup per run as one stacked bar of its parts (setup, tracing,
    compilation), the run's index at the bar's end."""
    rows = startup_rows(matrix)
    if not rows:
        return None
    n_runs = len(matrix.runs)
    fig, ax = _figure(len(matrix.keys) * n_runs, ROW_IN)
    offsets, labelled = _slot_offsets(n_runs), set()
    for k, i, split in rows:
        y, left = k + offsets[i], 0.0
        for part, seconds in split.parts().items():
            ax.barh(y, seconds, left=left, height=GROUP_FILL / n_runs,
                    color=STARTUP_COLOURS[part], label=None if part in labelled else part)
            labelled.add(part)
            left += seconds
        ax.text(left, y, f" {i}", va="center", fontsize=FONT_SIZE - 1)
    _key_axis(ax, matrix.keys)
    ax.set_xlabel("startup, s (setup, then tracing and compilation; the number is the run)",
                  fontsize=FONT_SIZE)
    _legend(ax)
    return fig


def counters_figure(matrix) -> Figure | None:
    """Each benchmark's graph nodes per run (bars, summed over its compiled functions),
    its traces and XLA compilations written at the bar's end; None without counters."""
    keys = [key for key in matrix.keys
            if any(matrix.counters(key, i) is not None for i in range(len(matrix.runs)))]
    if not keys:
        return None
    n_runs = len(matrix.runs)
    fig, ax = _figure(len(keys) * n_runs, ROW_IN)
    offsets = _slot_offsets(n_runs)
    for i in range(n_runs):
        found = [(k, matrix.counters(key, i)) for k, key in enumerate(keys)]
        found = [(k, c) for k, c in found if c is not None]
        y = np.array([k for k, _ in found]) + offsets[i]
        nodes = np.array([sum(c.graph_nodes.values()) for _, c in found])
        ax.barh(y, nodes, height=GROUP_FILL / n_runs, color=PALETTE(i % 10),
                label=run_label(matrix, i))
        for yy, n, (_, c) in zip(y, nodes, found):
            xla = "" if c.xla_compilations is None else f", {c.xla_compilations} XLA"
            ax.text(n, yy, f" {sum(c.traces.values())} traces{xla}", va="center",
                    fontsize=FONT_SIZE - 2)
    _key_axis(ax, keys)
    ax.set_xlabel("graph nodes of the compiled step (lower is smaller; exact for a TensorFlow "
                  "version and workflow)", fontsize=FONT_SIZE)
    _legend(ax)
    return fig


def memory_figure(runs, workflows: Sequence[str], labels: Sequence[str]) -> Figure:
    """Each workflow's peak RSS per memory run (kbench.memcheck.MemoryRun) as a bar: the
    RSS the process started from, pale, then the training's part above it."""
    n_runs = len(runs)
    fig, ax = _figure(len(workflows) * n_runs, ROW_IN)
    offsets = _slot_offsets(n_runs)
    for i, run in enumerate(runs):
        by_name = run.by_workflow()
        rows = [(k, by_name[w].peak) for k, w in enumerate(workflows) if w in by_name]
        y = np.array([k for k, _ in rows]) + offsets[i]
        start = np.array([peak.start_bytes for _, peak in rows]) / 1e6
        training = np.array([peak.run_bytes for _, peak in rows]) / 1e6
        color = PALETTE(i % 10)
        ax.barh(y, start, height=GROUP_FILL / n_runs, color=color, alpha=0.35)
        ax.barh(y, training, left=start, height=GROUP_FILL / n_runs, color=color,
                label=labels[i])
    _key_axis(ax, workflows)
    ax.set_xlabel("peak RSS, MB (pale: the process before training; full: the training's part)",
                  fontsize=FONT_SIZE)
    _legend(ax)
    return fig


# Plot name -> figure builder; a builder returns None when the matrix has no data for it.
PLOTS: dict[str, Callable] = {
    "throughput": throughput_figure,
    "ratios": ratio_figure,
    "latency": latency_figure,
    "startup": startup_figure,
    "counters": counters_figure,
}


def make_plots(matrix) -> dict[str, bytes]:
    """PNG bytes by plot name, for the plots the matrix has data for."""
    pngs = {}
    for name, build in PLOTS.items():
        if name == "ratios" and not has_comparisons(matrix):
            continue  # a single run: every ratio would be 1.0
        fig = build(matrix)
        if fig is not None:
            pngs[name] = png(fig)
    return pngs
