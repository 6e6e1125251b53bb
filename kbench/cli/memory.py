"""``kbench memory``: each workflow's peak memory and leak check in fresh processes, stored
and gated against a baseline run (kbench.memcheck)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from kbench import _format, memcheck, memory, workflows
from kbench.cli._common import (EXIT_REGRESSION, CliError, bad_input, console, import_tensorflow,
                                parse_fraction, say)
from kbench.cli._options import DatasetName

DEFAULT_MAX_GROWTH = _format.share(memcheck.MAX_PEAK_GROWTH, digits=0)


def _process_line(name: str, process: memcheck.ProcessResult) -> str:
    session = "with" if process.clear_session else "without"
    return (f"  {name} ({session} clear_session): peak {_format.size(process.peak.peak_bytes)}"
            f", slope {_format.slope(process.leak.bytes_per_call)}/call, {process.leak.alive} alive")


def _table(checked, verdicts=None) -> Table:
    table = Table(title="memory (fresh processes; peak = RSS high-water mark of the first "
                        "training)")
    for column in ("workflow", "start RSS", "peak RSS", "run's peak", "peak spread",
                   "slope/call (no clear | clear)", "alive", *(("baseline peak", "growth")
                                                               if verdicts else ())):
        table.add_column(column, justify="left" if column == "workflow" else "right")
    by_name = {v.workflow: v for v in verdicts or ()}
    for result in checked:
        peak = result.peak
        slopes = " | ".join(_format.slope(p.leak.bytes_per_call) for p in result.processes)
        alive = " | ".join(str(p.leak.alive) for p in result.processes)
        row = [result.workflow, _format.size(peak.start_bytes), _format.size(peak.peak_bytes),
               _format.size(peak.run_bytes), _format.share(result.peak_spread), slopes, alive]
        if verdicts:
            verdict = by_name[result.workflow]
            row += [_format.size(verdict.baseline.peak_bytes) if verdict.baseline else "-",
                    f"{verdict.growth:+.1%}" if verdict.growth is not None else "-"]
        failed = (by_name[result.workflow].failures if verdicts
                  else result.leak_failures())
        table.add_row(*row, style="red" if failed else None)
    return table


def memory_command(
    ctx: typer.Context,
    workflow: Annotated[Optional[list[str]], typer.Option(
        "-w", "--workflow", help="a workflow to check (repeatable; default: "
                                 + ", ".join(memcheck.DEFAULT_WORKFLOWS) + ")")] = None,
    dataset: Annotated[DatasetName, typer.Option(
        help="what each call trains on")] = DatasetName(memcheck.Settings.dataset),
    examples: Annotated[int, typer.Option(
        min=1, help="training examples a call trains one epoch on")] = memcheck.Settings.examples,
    calls: Annotated[int, typer.Option(
        min=1, help="trainings of the leak check after the peak's")] = memcheck.Settings.calls,
    warmup_calls: Annotated[int, typer.Option(
        min=0, help="first calls the RSS slope leaves out (caches filling once)")
    ] = memcheck.Settings.warmup_calls,
    baseline: Annotated[Optional[Path], typer.Option(
        help="a stored memory run to gate against: exit 1 on a peak grown beyond "
             "--max-growth, a model left alive or an RSS slope beyond "
             f"{_format.size(memory.LEAK_MAX_BYTES_PER_CALL)}/call")] = None,
    max_growth: Annotated[str, typer.Option(
        help="--baseline: how much a workflow's peak RSS may grow, e.g. 10%")
    ] = DEFAULT_MAX_GROWTH,
    out: Annotated[Path, typer.Option(
        help="where the run is stored (<out>/<tf>/<machine>/<time>.json)")
    ] = Path(memcheck.DEFAULT_FOLDER),
    github_json: Annotated[Optional[Path], typer.Option(
        help="also write the peaks and slopes for github-action-benchmark "
             "(tool: customSmallerIsBetter, MB)")] = None,
    tensorboard: Annotated[Optional[Path], typer.Option(
        help="also write the peaks, slopes and each call's RSS as TensorBoard scalars "
             "under this log dir (a new folder for the run)")] = None,
    candidate: Annotated[Optional[list[Path]], typer.Option(
        help="a stored memory run to show, gate (with --baseline) and export instead of "
             "measuring a new one, e.g. one of another TensorFlow version (repeatable)")
    ] = None,
    report: Annotated[Optional[Path], typer.Option(
        help="also write a Markdown and HTML report with a plot of the peaks into this "
             "folder: the baseline run, then the new or --candidate runs")] = None,
    report_name: Annotated[str, typer.Option(
        help="--report: the report's file name stem")] = "memory",
) -> None:
    """Measure each workflow's peak memory and check it for leaks, each in two fresh
    processes (without and with clear_session); with --baseline, gate against a stored run.
    Exit 1 on a leak (always) or a peak grown beyond --max-growth."""
    growth_limit = parse_fraction(max_growth, "--max-growth", allow_zero=True)
    candidates = list(candidate or ())
    if candidates and workflow:
        raise CliError(f"-w/--workflow picks workflows to measure, and --candidate reads a "
                       f"stored run instead; got both: -w {workflow!r}, --candidate "
                       f"{[str(c) for c in candidates]!r}")
    if github_json is not None and len(candidates) > 1:
        raise CliError(f"--github-json writes one run, got {len(candidates)} --candidate runs: "
                       f"{[str(c) for c in candidates]!r}")
    names = list(workflow or memcheck.DEFAULT_WORKFLOWS)
    with bad_input(workflows.WorkflowError):
        for name in names:
            workflows.get_workflow(name)
    with bad_input(memcheck.MemoryCheckError):
        settings = memcheck.Settings(dataset.value, examples, calls, warmup_calls)
        before = memcheck.read_run(baseline) if baseline is not None else None
        stored = [memcheck.read_run(path) for path in candidates]
    for option, folder in (("--out", out), ("--tensorboard", tensorboard), ("--report", report)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise CliError(f"{option} must be a folder, got the file {str(folder)!r}")
    shell = console()
    if not stored:
        shown = [_measure(ctx, shell, names, settings, out)]
    else:
        shown = stored
    failures = []
    for i, run in enumerate(shown):
        if stored:
            say(shell, f"memory run {candidates[i]}: TensorFlow {run.tf_version}, {run.datetime}")
        with bad_input(memcheck.MemoryCheckError):
            verdicts = memcheck.gate(before, run, growth_limit) if before is not None else None
        shell.print(_table(run.workflows, verdicts))
        failures += ([f for v in verdicts for f in v.failures] if verdicts is not None else
                     [f for w in run.workflows for f in w.leak_failures()])
    _write_exports(shell, shown, before, github_json, tensorboard, report, report_name)
    for failure in failures:
        say(console(stderr=True), failure, style="red")
    if failures:
        raise typer.Exit(EXIT_REGRESSION)
    say(shell, "PASS" + (f" against {baseline}" if baseline is not None else ""))


def _write_exports(shell, shown: list[memcheck.MemoryRun], before: memcheck.MemoryRun | None,
                   github_json: Path | None, tensorboard: Path | None, report: Path | None,
                   report_name: str) -> None:
    """The files asked for: github-action-benchmark JSON (of the one run shown),
    TensorBoard scalars of the runs shown, a report of the baseline and the runs shown."""
    if github_json is None and tensorboard is None and report is None:
        return
    from kbench import report as reports  # imports matplotlib

    with bad_input(reports.ReportError, OSError):
        if github_json is not None:
            github_json.write_text(json.dumps(reports.memory_github_json(shown[0]), indent=2)
                                   + "\n", encoding="utf-8")
            say(shell, f"wrote {github_json}")
        if tensorboard is not None:
            for log_dir in reports.write_memory_tensorboard(shown, tensorboard):
                say(shell, f"tensorboard: {log_dir}")
        if report is not None:
            written = reports.write_memory_report([*([before] if before else []), *shown],
                                                  report, name=report_name)
            for kind, path in written.items():
                say(shell, f"{kind}: {path}")


def _measure(ctx: typer.Context, shell, names: list[str], settings: memcheck.Settings,
             out: Path) -> memcheck.MemoryRun:
    """A new memory run of ``names``, each process's line said as it ends; stored in ``out``."""
    import_tensorflow(ctx)
    from kbench import fingerprint

    say(shell, f"memory check: {len(names)} workflow(s), 2 fresh processes each, "
               f"{settings.examples} {settings.dataset} examples a call, 1 + {settings.calls} "
               f"calls ({settings.warmup_calls} left out of the slope)")
    with bad_input(memcheck.MemoryCheckError):
        checked = memcheck.check_workflows(
            names, settings, on_process=lambda name, process: say(shell, _process_line(name, process)))
        run = memcheck.new_run(checked, settings, fingerprint.fingerprint())
        path = memcheck.write_run(run, out)
    say(shell, f"stored: {path}")
    return run
