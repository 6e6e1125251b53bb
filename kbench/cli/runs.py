"""``kbench compare``, ``check``, ``gate``, ``report`` and ``export``: commands over stored runs."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kbench import _validate, ab, compare, results, stats
from kbench.compare import exact as exact_mod
from kbench.cli._common import (EXIT_REGRESSION, CliError, bad_input, check_option, console,
                                gate, load_policy, load_runs, parse_fraction, say)
from kbench.cli._options import (DEFAULT_MAX_SLOWDOWN, DEFAULT_MIN_CHANGE, AlphaOption,
                                 BaselineIndex, LatestOption, MinChangeOption, RunsArgument,
                                 StoreOption, min_factor)
from kbench.cli._tables import print_gate, print_matrix

# Where `kbench export --format tensorboard` writes unless told (next to the reports).
TENSORBOARD_DIR = "reports/tensorboard"


def _load_matrix(runs: list[str] | None, *, latest: bool, store: Path | None, baseline: int,
                 alpha: float, min_change: str, at_least: int) -> compare.Matrix:
    """The comparison matrix of the runs named (or the store's) against ``runs[baseline]``.

    A bad ``--min-change`` is reported before any run is read; bad input exits 2.
    """
    factor = min_factor(min_change)
    loaded = load_runs(runs, latest=latest, store=store, at_least=at_least)
    check_option("--baseline", _validate.check_int, baseline, minimum=0, maximum=len(loaded) - 1)
    with bad_input(compare.ComparisonError):
        return compare.compare_runs(loaded, baseline, alpha=alpha, min_factor=factor)


def compare_command(
    runs: RunsArgument = None,
    latest: LatestOption = False,
    baseline: BaselineIndex = 0,
    store: StoreOption = None,
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
    min_change: MinChangeOption = DEFAULT_MIN_CHANGE,
) -> None:
    """Compare stored runs: per benchmark, median samples/s [CI], ratio and verdict."""
    print_matrix(console(), _load_matrix(runs, latest=latest, store=store, baseline=baseline,
                                         alpha=alpha, min_change=min_change, at_least=2))


def check_command(
    runs: RunsArgument = None,
    latest: LatestOption = False,
    store: StoreOption = None,
    exact: Annotated[bool, typer.Option(
        "--exact", help="check the exact counters (traces, XLA compilations, graph sizes) "
                        "against the expectations of the run's TensorFlow version instead")
    ] = False,
    expected: Annotated[Optional[Path], typer.Option(
        help="--exact: the expectations folder, holding tf-<version>.toml")
    ] = exact_mod.EXPECTED_DIR,
    update: Annotated[bool, typer.Option(
        "--update", help="--exact: write the run's counters into its expectations file "
                         "(keeping the other benchmarks' entries)")] = False,
) -> None:
    """Run the in-run ratio checks (e.g. tf.function >= 3x eager) on each run; exit 1 if one
    fails. With --exact: the exact counters instead, which must equal the expectations
    (any change fails, an improvement too)."""
    if update and not exact:
        raise CliError("--update writes the exact expectations: give --exact too")
    loaded = load_runs(runs, latest=latest, store=store, at_least=1)
    if exact:
        raise typer.Exit(_check_exact(loaded, expected, update=update))
    out, failed = console(), 0
    for run in loaded:
        say(out, f"{run.label}  {run.source}")
        with bad_input(compare.ComparisonError):
            outcomes = compare.run_checks(run)
        for outcome in outcomes:
            failed += outcome.status == "failed"
            say(out, f"  {outcome}", style="red" if outcome.status == "failed" else None)
    if failed:
        say(console(stderr=True), f"{failed} ratio check(s) failed")
        raise typer.Exit(EXIT_REGRESSION)


def _check_exact(loaded: list[results.Run], folder: Path, *, update: bool) -> int:
    out = console()
    if update:
        if len(loaded) != 1:
            raise CliError(f"--update writes one run's counters, found {len(loaded)} runs: "
                           "name the run file (or use --latest on a store of one session)")
        run = loaded[0]
        path = exact_mod.expectations_path(run, folder)
        with bad_input(compare.ComparisonError, OSError):
            written = exact_mod.write_expectations(run, path)
        say(out, f"wrote the exact counters of {len(exact_mod.expected_counters(run))} "
                 f"benchmark(s) of {run.label} to {path} ({len(written)} in all)")
        return 0
    failed = 0
    for run in loaded:
        path = exact_mod.expectations_path(run, folder)
        with bad_input(compare.ComparisonError):
            outcome = exact_mod.check_exact(run, exact_mod.read_expectations(path))
        say(out, f"{run.label}  {run.source}: {len(outcome.checked)} benchmark(s) checked "
                 f"against {path}")
        for change in outcome.changes:
            say(out, f"  changed: {change}", style="red")
        for key in outcome.unknown:
            say(out, f"  new: {key} is not in the expectations", style="red")
        if outcome.passed:
            say(out, "  every exact counter as expected")
        failed += not outcome.passed
        if not outcome.passed:
            say(console(stderr=True),
                f"{len(outcome.changes)} exact counter(s) changed, {len(outcome.unknown)} "
                f"benchmark(s) new: if intended, update the expectations: kbench check "
                f"--exact --update {run.source or '<run file>'} --expected {folder}")
    return EXIT_REGRESSION if failed else 0


def _read_sides(baseline: list[Path], candidate: list[Path]) -> tuple[results.Run, results.Run]:
    """The two runs to gate: one run a side as they are, else each side's medians (per session)."""
    with bad_input(results.ResultsError):
        sides = [[results.read_run(path) for path in paths] for paths in (baseline, candidate)]
        if len(baseline) == len(candidate) == 1:
            return sides[0][0], sides[1][0]
        base_run, cand_run = (ab.pool_runs(runs, source=f"{name}: medians of {len(runs)} run(s)")
                              for name, runs in zip(("baseline", "candidate"), sides))
    return base_run, cand_run


def gate_command(
    baseline: Annotated[list[Path], typer.Option(
        help="a baseline run file; repeat for several sessions (pooled, one median each)",
        show_default=False)],
    candidate: Annotated[list[Path], typer.Option(
        help="a candidate run file; repeat for several sessions", show_default=False)],
    max_slowdown: Annotated[str, typer.Option(
        help="allowed slowdown, e.g. 10% or 0.10")] = DEFAULT_MAX_SLOWDOWN,
    policy: Annotated[Optional[Path], typer.Option(
        help="per-benchmark thresholds (TOML or JSON policy file)")] = None,
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
    max_startup_factor: Annotated[float, typer.Option(
        help="fail a benchmark whose startup (tracing, compilation, first step) grew "
             "beyond this factor of the baseline's")] = compare.DEFAULT_MAX_STARTUP_FACTOR,
) -> None:
    """Gate candidate run(s) against baseline run(s).

    Exit 1 listing the benchmarks slower than the allowed slowdown, 0
    otherwise, 2 for bad input. With several runs a side, "slower" must also
    be significant on one median per session (Mann-Whitney p < alpha); for
    kbench ab's lockstep runs, on the paired estimate. With one run a side
    nothing is tested (rounds of one session cannot see the drift between
    sessions): the ratio alone fails it, marked untested. A startup more than
    --max-startup-factor times the baseline's fails too.
    """
    allowed = parse_fraction(max_slowdown, "--max-slowdown")
    base_run, cand_run = _read_sides(baseline, candidate)
    outcome = gate(base_run, cand_run, max_slowdown=allowed, policy=load_policy(policy),
                   alpha=alpha, max_startup_factor=max_startup_factor)
    print_gate(console(), outcome)  # one run a side: the matrix's warnings say what it means
    raise typer.Exit(outcome.exit_code)


def report_command(
    runs: RunsArgument = None,
    latest: LatestOption = False,
    baseline: BaselineIndex = 0,
    store: StoreOption = None,
    out: Annotated[Optional[Path], typer.Option(
        help="folder the report is written to (default: reports)")] = None,
    name: Annotated[str, typer.Option(help="file name stem of the report")] = "report",
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
    min_change: MinChangeOption = DEFAULT_MIN_CHANGE,
) -> None:
    """Write a Markdown and a self-contained HTML report (with plots) of stored runs."""
    from kbench import report  # imports matplotlib

    matrix = _load_matrix(runs, latest=latest, store=store, baseline=baseline, alpha=alpha,
                          min_change=min_change, at_least=1)
    folder = () if out is None else (out,)  # write_report's default folder unless --out
    with bad_input(report.ReportError, OSError):
        written = report.write_report(matrix, *folder, name=name)
    shown = console()
    for kind, path in written.items():
        say(shown, f"{kind}: {path}")


class ExportFormat(str, enum.Enum):
    github = "github"
    github_smaller = "github-smaller"
    tensorboard = "tensorboard"


def export(
    export_format: Annotated[ExportFormat, typer.Option(
        "--format", help="github: github-action-benchmark customBiggerIsBetter JSON of one "
                         "run (throughput); github-smaller: its customSmallerIsBetter JSON "
                         "(startups, traces, XLA compilations, graph nodes); tensorboard: "
                         "scalars and hparams, one log dir per run",
        show_default=False)],
    runs: RunsArgument = None,
    latest: LatestOption = False,
    store: StoreOption = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="github: the JSON file (default: stdout); "
                               f"tensorboard: the log dir (default: {TENSORBOARD_DIR})")] = None,
) -> None:
    """Export stored runs for github-action-benchmark or TensorBoard."""
    from kbench import report  # imports matplotlib

    loaded = load_runs(runs, latest=latest, store=store, at_least=1)
    if export_format is ExportFormat.github:
        _export_github(report.github_benchmark_json, loaded, output)
        return
    if export_format is ExportFormat.github_smaller:
        _export_github(report.github_smaller_json, loaded, output)
        return
    with bad_input(report.ReportError, OSError):
        paths = report.write_tensorboard(loaded, output or Path(TENSORBOARD_DIR))
    shown = console()
    for path in paths:
        say(shown, f"tensorboard: {path}")


def _export_github(to_json, loaded: list[results.Run], output: Path | None) -> None:
    """The one run of ``loaded`` as github-action-benchmark JSON, to ``output`` or stdout."""
    if len(loaded) != 1:
        raise CliError(f"--format github exports one run, got {len(loaded)}: "
                       f"{[r.source for r in loaded]}; name one file")
    document = json.dumps(to_json(loaded[0]), indent=2)
    if output is None:
        typer.echo(document)
        return
    with bad_input(OSError):
        output.write_text(document + "\n", encoding="utf-8")
    say(console(), f"github: {output}")
