"""Rich rendering of what the commands print: workflows, training history, matrices, verdicts.

Every number goes through kbench._format; training metrics (accuracy, loss)
are written with :data:`METRIC_FORMAT`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kbench import _format, compare, stats, workflows
from kbench.cli._common import say, warn

# Accuracy and loss, in the per-epoch lines, the history table and the test metrics.
METRIC_FORMAT = "{:.4f}"

_VERDICT_STYLE = {"faster": "green", "slower": "bold red", "same": "dim", "untested": "yellow"}


def metric(value: float) -> str:
    """A training metric (accuracy, loss) as printed: ``"0.9312"``."""
    return METRIC_FORMAT.format(float(value))


# --------------------------------------------------------------------------- workflows


def _workflow_kind(spec: workflows.WorkflowSpec) -> str:
    if spec.preset in workflows.TUTORIAL_WORKFLOWS:
        return (f"tutorial: {spec.dataset}, {spec.input_kind} input, {spec.labels} labels, "
                f"batch {spec.batch_size}, {spec.epochs} epochs")
    ref = workflows.REFERENCE_WORKFLOWS.get(spec.name)
    return f"reference ({ref.epochs} epochs)" if ref else ""


def workflow_table(specs: Sequence[workflows.WorkflowSpec]) -> Table:
    """One row per workflow, saying if it is a reference workflow (its epochs) or a
    tutorial's (its data and settings)."""
    table = Table(caption=f"{len(specs)} workflow(s)")
    table.add_column("workflow", no_wrap=True)
    table.add_column("kind")
    for spec in specs:
        table.add_row(Text(spec.name), Text(_workflow_kind(spec)))
    return table


def history_table(history: Mapping[str, Sequence[float]]) -> Table:
    """Epochs x metrics of a training history."""
    table = Table(title="history")
    names = sorted(history)
    table.add_column("epoch", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for epoch in range(len(history[names[0]]) if names else 0):
        table.add_row(str(epoch + 1), *(metric(history[n][epoch]) for n in names))
    return table


# --------------------------------------------------------------------------- comparisons


def _summary_text(summary: stats.Summary) -> Text:
    return Text(_format.rate_ci(summary.median, summary.ci_low, summary.ci_high))


def _comparison_text(comparison: stats.Comparison | None) -> Text:
    if comparison is None:
        return Text("")
    ratio = _format.ratio(comparison.ratio, comparison.ci_low, comparison.ci_high)
    return Text.assemble(f"{ratio} ", (comparison.verdict, _VERDICT_STYLE[comparison.verdict]))


def _print_runs(console: Console, matrix: compare.Matrix) -> None:
    """A legend of the run columns, and what differs from the baseline's fingerprint."""
    for i, run in enumerate(matrix.runs):
        role = "baseline" if i == matrix.baseline else "run"
        say(console, f"#{i} {role}: {run.label}  {run.source}")
    for i, diffs in enumerate(matrix.fingerprint_diffs):
        if i == matrix.baseline:
            continue
        if not diffs:
            say(console, f"#{i} vs #{matrix.baseline}: same machine and software fingerprint")
            continue
        changes = "; ".join(f"{path}: {a!r} -> {b!r}" for path, (a, b) in sorted(diffs.items()))
        say(console, f"#{i} vs #{matrix.baseline} fingerprint differs: {changes}", "yellow")


def matrix_table(matrix: compare.Matrix) -> Table:
    """Benchmarks x runs: median samples/s [95% CI]; ratio [CI] and verdict vs the baseline."""
    table = Table(title="samples/s, median [95% CI]; ratio to baseline [95% CI] and verdict",
                  title_justify="left")
    table.add_column("benchmark", no_wrap=True)
    columns = range(len(matrix.runs))
    others = [i for i in columns if i != matrix.baseline]
    for i in columns:
        table.add_column(f"#{i}" + (" (baseline)" if i == matrix.baseline else ""),
                         justify="right")
    for i in others:
        table.add_column(f"#{i} / #{matrix.baseline}", justify="right")
    for key in matrix.keys:  # Text, not markup: keys hold brackets (test_x[cpu-b64])
        table.add_row(Text(key),
                      *(_summary_text(matrix.cell(key, i).summary) for i in columns),
                      *(_comparison_text(matrix.cell(key, i).comparison) for i in others))
    geomeans = ["" if matrix.geomean[i] is None else _format.ratio(matrix.geomean[i])
                for i in others]
    table.add_section()
    table.add_row("geometric mean of ratios", *([""] * len(matrix.runs)), *geomeans)
    return table


def print_counters(console: Console, matrix: compare.Matrix) -> None:
    """The exact counters (noise cannot move them) of the benchmarks whose counters differ
    from the baseline run's, or one line saying none do."""
    runs = range(len(matrix.runs))
    counted = [key for key in matrix.keys if any(matrix.counters(key, i) for i in runs)]
    if not counted:
        return
    changed = [key for key in counted
               if len({_format.counters(matrix.counters(key, i)) for i in runs}) > 1]
    if not changed:
        say(console, f"exact counters (traces, graph nodes, XLA compilations): the same in "
                     f"every run, {len(counted)} benchmark(s)")
        return
    table = Table(title=f"exact counters that differ from #{matrix.baseline}'s (a change of "
                        "TensorFlow or of the workflow, whatever the noise)",
                  title_justify="left")
    table.add_column("benchmark", no_wrap=True)
    for i in runs:
        table.add_column(f"#{i}", justify="right")
    base = matrix.baseline
    for key in changed:
        cells = [_format.counters(matrix.counters(key, i)) for i in runs]
        table.add_row(Text(key), *(Text(c, style="bold" if c != cells[base] else "")
                                   for c in cells))
    console.print(table)


def print_startups(console: Console, matrix: compare.Matrix,
                   factor: float = compare.DEFAULT_MAX_STARTUP_FACTOR) -> None:
    """The benchmarks whose startup grew beyond ``factor`` times the baseline run's (the
    startup gate's default), with their parts; or one line with the largest factor."""
    base = matrix.baseline
    factors = {(key, i): grown for key in matrix.keys for i in range(len(matrix.runs))
               if i != base and (grown := matrix.startup_factor(key, i)) is not None}
    if not factors:
        return
    grown = [(key, i) for (key, i), f in factors.items() if f > factor]
    if not grown:
        (key, i), largest = max(factors.items(), key=lambda item: item[1])
        say(console, f"startups: within {factor:g}x of #{base}'s in every run, "
                     f"{len({k for k, _ in factors})} benchmark(s) (the largest, {key} in #{i}: "
                     f"{largest:.2f}x)")
        return
    table = Table(title=f"startups grown beyond {factor:g}x of #{base}'s (s: setup + tracing "
                        "+ compilation -> total)", title_justify="left")
    for column in ("benchmark", f"#{base}", "run", "startup", "factor"):
        table.add_column(column, no_wrap=column == "benchmark",
                         justify="left" if column == "benchmark" else "right")
    for key, i in grown:
        before, after = matrix.runs[base].results[key], matrix.runs[i].results[key]
        table.add_row(Text(key), _format.startup(before.startup_s, before.startup_split),
                      f"#{i}", Text(_format.startup(after.startup_s, after.startup_split),
                                    style="bold"), f"{factors[(key, i)]:.2f}x")
    console.print(table)


def print_matrix(console: Console, matrix: compare.Matrix,
                 startup_factor: float | None = compare.DEFAULT_MAX_STARTUP_FACTOR) -> None:
    """The run legend, the fingerprint differences, the table, the exact counters that
    differ, the startups grown beyond ``startup_factor`` (None: not shown), then the
    warnings (stderr)."""
    _print_runs(console, matrix)
    console.print(matrix_table(matrix))
    print_counters(console, matrix)
    if startup_factor is not None:
        print_startups(console, matrix, startup_factor)
    for warning in matrix.warnings:
        warn(warning)


def print_gate(console: Console, result: compare.GateResult) -> None:
    """The matrix, then PASS with the allowed slowdowns, or FAIL listing the failures."""
    print_matrix(console, result.matrix, result.max_startup_factor)
    if result.passed:
        allowed = "/".join(_format.share(a, digits=0) for a in sorted(set(result.allowed.values())))
        console.print(f"[green]PASS[/green]: no benchmark slower than allowed ({allowed}; "
                      "significantly so, where the runs' design can tell), no startup grown "
                      "beyond its allowance")
        return
    if result.failures:
        console.print(f"[bold red]FAIL[/bold red]: {len(result.failures)} benchmark(s) "
                      "slower than allowed:")
    for failure in result.failures:
        say(console, f"  {failure}")
    if result.startup_failures:
        console.print(f"[bold red]FAIL[/bold red]: {len(result.startup_failures)} "
                      "benchmark(s) whose startup grew beyond the allowed factor:")
    for failure in result.startup_failures:
        say(console, f"  {failure}")
