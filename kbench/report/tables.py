"""What a report shows, read off a comparison matrix: the data helpers that the
documents and the plots share, and the error either raises."""

from __future__ import annotations

import numpy as np

from kbench import compare
from kbench.record import Latencies, StartupSplit


class ReportError(ValueError):
    """Input a report cannot be made from; the message quotes it."""


def check_matrix(matrix) -> None:
    if not isinstance(matrix, compare.Matrix):
        raise ReportError(f"matrix must be a kbench.compare.Matrix (see compare.compare_runs), "
                          f"got {type(matrix).__name__}: {matrix!r:.80}")
    if not matrix.keys:
        raise ReportError(f"cannot report an empty comparison matrix: keys={matrix.keys!r} "
                          f"in runs {[run.label for run in matrix.runs]}")


def has_comparisons(matrix) -> bool:
    return any(cell.comparison is not None for cell in matrix.cells.values())


def run_label(matrix, i: int) -> str:
    """``"1: tf2.20.0 cpu-x 2026-..."``, with " (baseline)" on the baseline run."""
    label = f"{i}: {matrix.runs[i].label}"
    return label + " (baseline)" if i == matrix.baseline else label


def ratio_grid(matrix) -> tuple[np.ndarray, np.ndarray]:
    """(ratios, significant) arrays of shape (keys, runs); the baseline column is all 1.0."""
    shape = (len(matrix.keys), len(matrix.runs))
    ratios, significant = np.ones(shape), np.zeros(shape, dtype=bool)
    for k, key in enumerate(matrix.keys):
        for i in range(len(matrix.runs)):
            comparison = matrix.cell(key, i).comparison
            if comparison is not None:
                ratios[k, i], significant[k, i] = comparison.ratio, comparison.significant
    return ratios, significant


def _present(matrix, field: str) -> list[tuple[int, int, object]]:
    """(key index, run index, value) of every cell whose record's ``field`` is not None."""
    rows = []
    for k, key in enumerate(matrix.keys):
        for i, run in enumerate(matrix.runs):
            value = getattr(run.results[key], field)
            if value is not None:
                rows.append((k, i, value))
    return rows


def latency_rows(matrix) -> list[tuple[int, int, Latencies]]:
    """(key index, run index, latencies) for every cell whose record has step latencies."""
    return _present(matrix, "step_latency_s")


def startup_rows(matrix) -> list[tuple[int, int, StartupSplit]]:
    """(key index, run index, startup split) for every cell whose record has one."""
    return _present(matrix, "startup_split")


def check_memory_runs(runs, what: str) -> list:
    """``runs`` as a list of kbench memory runs, each with workflows.

    Raises:
        ReportError: naming ``what`` needs them, and the first item that is not one.
    """
    from kbench import memcheck

    runs = list(runs)
    if not runs:
        raise ReportError(f"{what} needs at least one run, got {runs!r}")
    for i, run in enumerate(runs):
        if not isinstance(run, memcheck.MemoryRun) or not run.workflows:
            raise ReportError(f"runs[{i}] must be a kbench.memcheck.MemoryRun with workflows, "
                              f"got {type(run).__name__}: {run!r:.80}")
    return runs
