"""``kbench memory`` runs (kbench.memcheck.MemoryRun) as a report: the runs, each
workflow's peak and its leak check per run, gated against the first run as
``kbench memory --baseline`` gates, and a plot of the peaks. Rendered by
kbench.report.document, as the benchmark reports are. Reports never measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kbench import _format, memcheck, memory
from kbench.report import plots as figures
from kbench.report.document import REPORT_DIR, Section, Text, write_sections
from kbench.report.tables import check_memory_runs

MEMORY_TITLE = "kbench memory report"
MEMORY_PLOT = "memory"


def run_label(i: int, run) -> str:
    """``"0: tf2.21.0 cpu-x 2026-12-03T17:52:13"``, " (baseline)" on the first."""
    return f"{i}: {run.label}" + (" (baseline)" if i == 0 else "")


def _workflows(runs) -> list[str]:
    return list(dict.fromkeys(w.workflow for run in runs for w in run.workflows))


def memory_sections(runs: Sequence) -> list[Section]:
    """The runs, the peaks and the leak checks; each run's workflows gated against the
    first run's (memcheck.gate at MAX_PEAK_GROWTH): bold where a gate fails."""
    runs = check_memory_runs(runs, "a memory report")
    verdicts = [{v.workflow: v for v in memcheck.gate(runs[0], run)} for run in runs]
    header = ("workflow", *(str(i) + (" (baseline)" if i == 0 else "")
                            for i in range(len(runs))))
    peaks, leaks = [], []
    for name in _workflows(runs):
        peak_cells, leak_cells = [Text(name)], [Text(name)]
        for i, run in enumerate(runs):
            mine = run.by_workflow().get(name)
            if mine is None:
                peak_cells.append(Text("n/a"))
                leak_cells.append(Text("n/a"))
                continue
            verdict = verdicts[i][name]
            growth = f" ({verdict.growth:+.1%})" if i and verdict.growth is not None else ""
            grew = any("peak RSS grew" in f for f in verdict.failures)
            peak_cells.append(Text(f"{_format.size(mine.peak.peak_bytes)}{growth}, training "
                                   f"{_format.size(mine.peak.run_bytes)}",
                                   "differs" if grew else ""))
            slopes = " / ".join(_format.slope(p.leak.bytes_per_call) for p in mine.processes)
            alive = sum(p.leak.alive or 0 for p in mine.processes)
            leak_cells.append(Text(f"{slopes}, {alive} alive",
                                   "differs" if mine.leak_failures() else ""))
        peaks.append(tuple(peak_cells))
        leaks.append(tuple(leak_cells))
    runs_rows = tuple((Text(run_label(i, run)), Text(str(run.tf_version)),
                       Text(str(run.fingerprint.get("machine_key"))), Text(run.datetime),
                       Text(f"{run.settings.examples} {run.settings.dataset} examples, 1 + "
                            f"{run.settings.calls} calls ({run.settings.warmup_calls} out of "
                            "the slope)"))
                      for i, run in enumerate(runs))
    return [
        Section("Memory runs", ("run", "TensorFlow", "machine", "date", "settings"), runs_rows,
                ("Each workflow ran in two fresh processes (without and with clear_session); "
                 "kbench.memcheck.",)),
        Section("Peak memory (RSS high-water mark of the first training in a fresh process; "
                "lower is better)", header, tuple(peaks),
                ("The peak RSS, its growth over the baseline run's, and the training's own "
                 "part (the peak above the RSS the process started from: TensorFlow and the "
                 f"data). Bold: grown beyond {memcheck.MAX_PEAK_GROWTH:.0%} "
                 "(memcheck.MAX_PEAK_GROWTH), what kbench memory --baseline fails.",),
                plot=MEMORY_PLOT),
        Section("Leak check (RSS per call without / with clear_session; models left alive)",
                header, tuple(leaks),
                ("Bold: a leak, a model alive after its call or a slope beyond "
                 f"{_format.size(memory.LEAK_MAX_BYTES_PER_CALL)} per call "
                 "(memory.LEAK_MAX_BYTES_PER_CALL), which fails with or without a baseline.",)),
    ]


def memory_plots(runs: Sequence) -> dict[str, bytes]:
    """The peaks' plot as PNG bytes, by plot name."""
    runs = check_memory_runs(runs, "a memory report")
    return {MEMORY_PLOT: figures.png(figures.memory_figure(
        runs, _workflows(runs), [run_label(i, run) for i, run in enumerate(runs)]))}


def write_memory_report(runs: Sequence, out_dir=REPORT_DIR, *, name: str = "memory",
                        title: str = MEMORY_TITLE) -> dict[str, Path]:
    """Write ``name.md``, ``name.html`` and ``name-memory.png`` of ``runs`` (the first is
    the baseline) into ``out_dir``; the paths by kind."""
    return write_sections(memory_sections(runs), memory_plots(runs), out_dir, name=name,
                          title=title)
