"""The ``kbench`` command: workflows, the machine, training, benchmarks, comparisons.

The CLI only wires and displays: workflows come from kbench.workflows,
training from kbench.training, stored runs from kbench.results, comparisons
and gating from kbench.compare, files from kbench.report, A/B runs from
kbench.ab. It renders what they return as rich tables.

Exit codes: 0 success; 1 a regression beyond the allowed slowdown (``gate``,
``ab``) or a benchmark run that failed; 2 bad arguments or input (a missing
or unreadable file, an unknown workflow, a malformed policy), reported as one
line on stderr, never a traceback.

TensorFlow is imported only by the commands that need it (``env``, ``run``,
``bench``, ``ab``) and matplotlib only by ``report`` and ``export``, so that
``kbench --help``, ``list``, ``compare`` and ``gate`` start fast.
"""

from __future__ import annotations

import contextlib
import enum
import glob
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from kbench import ab, compare, fingerprint, results, stats, workflows

# 1: a regression (or a failed benchmark run); 2: bad arguments or input.
EXIT_REGRESSION = compare.EXIT_REGRESSION
EXIT_BAD_INPUT = compare.EXIT_BAD_INPUT

# Width of rich output when stdout is not a terminal (CI logs, pipes, tests)
# and $COLUMNS is unset: rich would assume 80 columns and wrap benchmark names
# (up to ~50 characters, e.g. test_prefetch_training[cpu-b64-fit-autotune-off])
# across lines; 200 fits a name and three runs' columns on one line.
PIPE_WIDTH = 200


class CliError(typer.TyperException):
    """Bad arguments or input: reported as one line on stderr, exit code 2."""

    exit_code = EXIT_BAD_INPUT


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _report_error(err: typer.TyperException) -> None:
    ctx = getattr(err, "ctx", None)
    message = _one_line(err.format_message())
    if ctx is None:
        print(f"kbench: error: {message}", file=sys.stderr)
    elif message:  # empty for "no arguments: help shown"
        print(f"{ctx.command_path}: error: {message} (see '{ctx.command_path} --help')",
              file=sys.stderr)


class _Group(TyperGroup):
    """Typer's group with kbench's error reporting: one line, no usage block, no traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as err:  # click's usage errors and CliError
            _report_error(err)
            sys.exit(err.exit_code)
        except typer.Abort:
            print("kbench: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Group,
    name="kbench",
    help="TensorFlow/Keras training workflows and benchmarks: list, run, benchmark, "
         "compare and gate stored runs, A/B two TensorFlow installs, report and export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def main() -> None:
    """Entry point of the ``kbench`` console script."""
    app(prog_name="kbench")


# --------------------------------------------------------------------------- helpers


def _say(console: Console, text: str, style: str | None = None) -> None:
    """One plain line: no markup (benchmark keys hold brackets), no highlighting, no wrapping."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


@contextlib.contextmanager
def _bad_input(*errors: type[BaseException]) -> Iterator[None]:
    """Turn the given errors (bad input by their contract) into a one-line exit 2."""
    try:
        yield
    except errors as err:
        raise CliError(str(err)) from None


_FRACTION = re.compile(r"^\s*(?P<number>[0-9]*\.?[0-9]+)\s*(?P<percent>%?)\s*$")


def parse_fraction(text: str, option: str, *, allow_zero: bool = False) -> float:
    """A share given as ``"10%"`` or ``"0.10"``, as a float strictly below 1.

    Raises:
        typer.BadParameter: quoting ``text``, for anything else (``"10"``, ``"-5%"``,
            ``"abc"``, ``"100%"``).
    """
    match = _FRACTION.match(str(text))
    value = None
    if match:
        value = float(match["number"]) / (100 if match["percent"] else 1)
    lowest = "0" if allow_zero else "above 0"
    if value is None or not (0 <= value < 1) or (value == 0 and not allow_zero):
        raise typer.BadParameter(
            f"expected a percentage like '10%' or a fraction like '0.10' ({lowest}, "
            f"below 1), got {text!r}", param_hint=f"'{option}'")
    return value


def _number(kind: type, low: float, high: float = math.inf, *,
            open_low: bool = False, open_high: bool = True) -> Callable:
    """An option parser: a finite ``kind`` (int or float) within the bounds, or an error
    quoting what was given (typer's own messages do not show the value)."""
    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"expected {'an integer' if kind is int else 'a number'}, "
                                     f"got {text!r}") from None
        too_low = value <= low if open_low else value < low
        too_high = value >= high if open_high else value > high
        if not math.isfinite(value) or too_low or too_high:
            bounds = (f"{'>' if open_low else '>='} {low:g}" if high == math.inf else
                      f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}")
            raise typer.BadParameter(f"must be {bounds}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, 1)


def _check_profile(name: str | None) -> str:
    """The benchmark profile to use (KBENCH_PROFILE or the default when ``name`` is None)."""
    from kbench import measure  # imports TensorFlow: only for the commands that run benchmarks

    name = name or os.environ.get(measure.PROFILE_ENV) or measure.DEFAULT_PROFILE
    if name not in measure.PROFILES:
        raise typer.BadParameter(f"must be one of {tuple(measure.PROFILES)}, got {name!r}",
                                 param_hint="'--profile'")
    return name


def _runner(ctx: typer.Context) -> Callable[..., subprocess.CompletedProcess]:
    """The subprocess runner: ``subprocess.run`` unless the caller's context object sets one."""
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    return obj.get("runner", subprocess.run)


def _read_sources(sources: Sequence[str], store: Path | None) -> tuple[list, list]:
    """Runs named by files, folders and globs (or the store), and the problems of skipped files.

    A named file must be readable (exit 2 otherwise); unreadable files found in a
    folder or by a glob are skipped and reported.
    """
    if not sources:
        folder = results.store_dir(store)
        if not Path(folder).is_dir():
            raise CliError(f"the results store {str(folder)!r} does not exist; run "
                           "'kbench bench' first, or name run files")
        return results.scan([str(folder)])
    files, others = [], []
    for source in sources:
        if Path(source).is_file():
            files.append(source)
        elif glob.has_magic(source):
            if not glob.glob(source, recursive=True):
                raise CliError(f"no files match {source!r}")
            others.append(source)
        elif Path(source).is_dir():
            others.append(source)
        else:
            raise CliError(f"no such file or folder: {source!r}")
    with _bad_input(results.ResultsError):
        runs = [results.read_run(path) for path in files]
    found, problems = results.scan(others) if others else ([], [])
    named = {str(Path(r.source).resolve()) for r in runs}
    runs += [r for r in found if str(Path(r.source).resolve()) not in named]
    return sorted(runs, key=lambda r: (r.timestamp, r.source)), list(problems)


def _load_runs(sources: Sequence[str] | None, *, latest: bool, store: Path | None,
               at_least: int) -> list:
    runs, problems = _read_sources(sources or [], store)
    err = _console(stderr=True)
    for problem in problems:
        _say(err, f"skipped {problem.path}: {_one_line(problem.reason)}", style="yellow")
    if latest:
        runs = results.latest(runs)
    if len(runs) < at_least:
        where = ", ".join(repr(s) for s in sources) if sources else \
            repr(str(results.store_dir(store)))
        raise CliError(f"need at least {at_least} run(s), found {len(runs)} in {where}")
    return runs


# Said when a gate compares one session with one session. Measured on the
# project's 2-core VM: 20 single-session A/A comparisons (same code, same TF,
# separate sessions, 7 rounds each, 10% factor) flagged 9 as slower, while
# the same sessions pooled by session (kbench ab, 5 pairs) flagged none.
SINGLE_SESSION_WARNING = (
    "one run a side: the test sees the spread of rounds within each session, not the "
    "drift between sessions (on a shared 2-core VM, 9 of 20 A/A single-session "
    "comparisons were flagged); repeat --baseline/--candidate with >= 5 runs a side, "
    "or use kbench ab")


# --------------------------------------------------------------------------- rendering


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _summary_text(summary: stats.Summary) -> str:
    return f"{_rate(summary.median)} [{_rate(summary.ci_low)}, {_rate(summary.ci_high)}]"


_VERDICT_STYLE = {"faster": "green", "slower": "bold red", "same": "dim"}


def _comparison_text(comparison: stats.Comparison) -> Text:
    ratio = stats.format_ratio(comparison.ratio, comparison.ci_low, comparison.ci_high)
    return Text.assemble(f"{ratio} ", (comparison.verdict, _VERDICT_STYLE[comparison.verdict]))


def _print_runs(console: Console, matrix: compare.Matrix) -> None:
    """A legend of the run columns, and what differs from the baseline's fingerprint."""
    for i, run in enumerate(matrix.runs):
        role = "baseline" if i == matrix.baseline else "run"
        _say(console, f"#{i} {role}: {run.label}  {run.source}")
    for i, diffs in enumerate(matrix.fingerprint_diffs):
        if i == matrix.baseline:
            continue
        if not diffs:
            _say(console, f"#{i} vs #{matrix.baseline}: same machine and software fingerprint")
            continue
        changes = "; ".join(f"{path}: {a!r} -> {b!r}" for path, (a, b) in sorted(diffs.items()))
        _say(console, f"#{i} vs #{matrix.baseline} fingerprint differs: {changes}", "yellow")


def matrix_table(matrix: compare.Matrix) -> Table:
    """Benchmarks x runs: median samples/s [95% CI]; ratio [CI] and verdict vs the baseline."""
    table = Table(title="samples/s, median [95% CI]; ratio to baseline [95% CI] and verdict",
                  title_justify="left")
    table.add_column("benchmark", no_wrap=True)
    others = [i for i in range(len(matrix.runs)) if i != matrix.baseline]
    for i in range(len(matrix.runs)):
        table.add_column(f"#{i}" + (" (baseline)" if i == matrix.baseline else ""),
                         justify="right")
    for i in others:
        table.add_column(f"#{i} / #{matrix.baseline}", justify="right")
    for key in matrix.keys:  # Text, not markup: keys hold brackets (test_x[cpu-b64])
        cells = [Text(_summary_text(matrix.cell(key, i).summary)) for i in range(len(matrix.runs))]
        ratios = []
        for i in others:
            comparison = matrix.cell(key, i).comparison
            ratios.append(_comparison_text(comparison) if comparison is not None else Text(""))
        table.add_row(Text(key), *cells, *ratios)
    geomeans = [f"{g:.3f}x" if g is not None else "" for g in
                (matrix.geomean[i] for i in others)]
    table.add_section()
    table.add_row("geometric mean of ratios", *([""] * len(matrix.runs)), *geomeans)
    return table


def print_matrix(console: Console, matrix: compare.Matrix) -> None:
    """The run legend, the fingerprint differences, the table, then the warnings."""
    _print_runs(console, matrix)
    console.print(matrix_table(matrix))
    err = _console(stderr=True)
    for warning in matrix.warnings:
        _say(err, f"warning: {_one_line(warning)}", style="yellow")


def _print_gate(console: Console, gate_result: compare.GateResult) -> None:
    print_matrix(console, gate_result.matrix)
    if not gate_result.failures:
        allowed = "/".join(f"{a:.0%}" for a in sorted(set(gate_result.allowed.values())))
        console.print(f"[green]PASS[/green]: no benchmark significantly slower than allowed "
                      f"({allowed})")
        return
    console.print(f"[bold red]FAIL[/bold red]: {len(gate_result.failures)} benchmark(s) "
                  "significantly slower than allowed:")
    for failure in gate_result.failures:
        _say(console, f"  {failure}")


def _load_policy(path: Path | None) -> compare.Policy | None:
    if path is None:
        return None
    if not path.is_file():
        raise CliError(f"no such policy file: {str(path)!r}")
    with _bad_input(compare.ComparisonError):
        return compare.load_policy(path)


def _gate(baseline, candidate, *, max_slowdown: float, policy: compare.Policy | None,
          alpha: float) -> compare.GateResult:
    with _bad_input(compare.ComparisonError):
        return compare.gate(baseline, candidate, max_slowdown=max_slowdown, policy=policy,
                            alpha=alpha)


# --------------------------------------------------------------------------- list


def _str_enum(name: str, values: Sequence[str]) -> type[enum.Enum]:
    """An Enum whose values are ``values``: typer shows them as choices and rejects others."""
    return enum.Enum(name, [(v, v) for v in values], type=str)


Family = _str_enum("Family", workflows.FAMILIES)
Style = _str_enum("Style", workflows.STYLES)
Loop = _str_enum("Loop", workflows.LOOPS)
Execution = _str_enum("Execution", workflows.EXECUTIONS)
# Precision by its tag in workflow names (fp32) or its Keras policy name (float32).
_PRECISION_BY_TAG = {tag: name for name, tag in workflows.PRECISION_TAGS.items()}
Precision = _str_enum("Precision", (*_PRECISION_BY_TAG, *workflows.PRECISIONS))
DatasetName = _str_enum("DatasetName", workflows.DATASETS)


def _values(chosen: Sequence[enum.Enum] | None) -> tuple[str, ...] | None:
    return tuple(c.value for c in chosen) if chosen else None


@app.command("list")
def list_workflows(
    family: Annotated[Optional[list[Family]],
                      typer.Option(help="model family (repeatable)")] = None,
    style: Annotated[Optional[list[Style]], typer.Option(help="build style (repeatable)")] = None,
    loop: Annotated[Optional[list[Loop]], typer.Option(help="training loop (repeatable)")] = None,
    execution: Annotated[Optional[list[Execution]],
                         typer.Option(help="eager, tf.function or XLA (repeatable)")] = None,
    precision: Annotated[Optional[list[Precision]],
                         typer.Option(help="tag or policy name (repeatable)")] = None,
    reference: Annotated[bool, typer.Option(
        "--reference", help="only the reference workflows the accuracy suite trains")] = False,
    names_only: Annotated[bool, typer.Option(
        "--names", help="print names only, one a line")] = False,
) -> None:
    """List workflows (every combination, or the reference ones), filtered by field."""
    specs = tuple(workflows.REFERENCE_WORKFLOWS.values()) if reference else workflows.full_matrix()
    filters = {"family": _values(family), "style": _values(style), "loop": _values(loop),
               "execution": _values(execution)}
    if precision:
        filters["precision"] = tuple(_PRECISION_BY_TAG.get(p.value, p.value) for p in precision)
    specs = workflows.select(specs, **{k: v for k, v in filters.items() if v})
    console = _console()
    if names_only:
        for spec in specs:
            _say(console, spec.name)
        return
    table = Table(caption=f"{len(specs)} workflow(s)")
    table.add_column("workflow", no_wrap=True)
    table.add_column("reference (epochs)")
    for spec in specs:
        ref = workflows.REFERENCE_WORKFLOWS.get(spec.name)
        table.add_row(Text(spec.name), Text(f"yes ({ref.epochs})" if ref else ""))
    console.print(table)


# --------------------------------------------------------------------------- env


@app.command()
def env(
    as_json: Annotated[bool, typer.Option("--json", help="the whole fingerprint as JSON")] = False,
) -> None:
    """Show this machine's fingerprint: software, CPU, threads, GPUs, environment."""
    fp = fingerprint.fingerprint()
    if as_json:
        typer.echo(json.dumps(fp, indent=2, sort_keys=True))
        return
    console = _console()
    for line in fingerprint.describe(fp):
        _say(console, line)


# --------------------------------------------------------------------------- run


def _progress_callback(progress: Progress):
    """A Keras callback that drives a rich progress bar: one bar per epoch, in steps."""
    import keras  # only `kbench run` needs Keras

    class RichProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.task = progress.add_task("training", total=None, loss="")

        def on_epoch_begin(self, epoch, logs=None):
            progress.reset(self.task, total=self.params.get("steps"),
                           description=f"epoch {epoch + 1}/{self.params.get('epochs')}", loss="")

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            progress.update(self.task, advance=1,
                            loss="" if loss is None else f"loss {float(loss):.4f}")

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted((logs or {}).items()))
            _say(progress.console, f"epoch {epoch + 1}: {shown}")

    return RichProgress()


def _history_table(history: dict[str, list[float]]) -> Table:
    table = Table(title="history")
    names = sorted(history)
    table.add_column("epoch", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for epoch in range(len(history[names[0]]) if names else 0):
        table.add_row(str(epoch + 1), *(f"{history[n][epoch]:.4f}" for n in names))
    return table


@app.command()
def run(
    workflow: Annotated[str, typer.Argument(
        help="a workflow name, e.g. mlp-functional-custom-xla-fp32 (see kbench list)")],
    epochs: Annotated[Optional[int], typer.Option(
        parser=_positive_int, help="override the epochs")] = None,
    dataset: Annotated[Optional[DatasetName], typer.Option(help="override the dataset")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        parser=_positive_int, help="override the batch size")] = None,
    tensorboard: Annotated[Optional[Path], typer.Option(
        help="also log to this TensorBoard log dir (keras.callbacks.TensorBoard)")] = None,
) -> None:
    """Train a workflow once and print its metrics."""
    overrides = {"epochs": epochs, "dataset": dataset.value if dataset else None,
                 "batch_size": batch_size}
    with _bad_input(workflows.WorkflowError):
        spec = workflows.get_workflow(workflow, **{k: v for k, v in overrides.items()
                                                   if v is not None})
    if tensorboard is not None and tensorboard.exists() and not tensorboard.is_dir():
        raise CliError(f"--tensorboard must be a folder, got the file {str(tensorboard)!r}")
    import keras

    from kbench import data, training  # import TensorFlow

    console = _console()
    _say(console, f"training {spec.name} on {spec.dataset}: {spec.epochs} epoch(s), "
                  f"batch size {spec.batch_size}, {spec.optimizer} lr {spec.learning_rate:g}, "
                  f"seed {spec.seed}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), console=console)
    callbacks = [_progress_callback(progress)]
    if tensorboard is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard)))
    with _bad_input(workflows.UpstreamBugError, data.DatasetError), progress:
        result = training.train(spec, callbacks=callbacks)
    console.print(_history_table(result.history))
    rate = result.samples_seen / result.wall_time_s if result.wall_time_s > 0 else math.nan
    for line in (f"test_accuracy {result.test_accuracy:.4f}", f"test_loss {result.test_loss:.4f}",
                 f"epochs_run {result.epochs_run}", f"steps {result.steps}",
                 f"wall_time_s {result.wall_time_s:.2f}",
                 f"samples_per_s {rate:,.0f} (over wall_time_s: with tracing and validation)"):
        _say(console, line)
    if tensorboard is not None:
        _say(console, f"TensorBoard logs: {tensorboard}")


# --------------------------------------------------------------------------- bench


ProfileOption = Annotated[Optional[str], typer.Option(
    help="benchmark profile: smoke, default or full (default: $KBENCH_PROFILE or 'default')")]
StoreOption = Annotated[Optional[Path], typer.Option(
    help="the results store (default: $KBENCH_STORE or reports/runs)")]
KeywordOption = Annotated[Optional[str], typer.Option(
    "-k", "--keyword", help="pytest -k expression selecting benchmarks")]
TimeoutOption = Annotated[float, typer.Option(
    parser=_number(float, 1), help="seconds one run of the suite may take")]
RootOption = Annotated[Path, typer.Option(help="the kbench project folder (holds benchmarks/)")]


def _check_root(root: Path) -> None:
    if not (root / ab.BENCHMARK_DIR).is_dir():
        raise CliError(f"no {ab.BENCHMARK_DIR}/ folder in {str(root)!r}: run from the kbench "
                       "project folder or pass --root")


@app.command()
def bench(
    ctx: typer.Context,
    profile: ProfileOption = None,
    store: StoreOption = None,
    keyword: KeywordOption = None,
    timeout: TimeoutOption = ab.DEFAULT_INVOCATION_TIMEOUT_S,
    root: RootOption = Path("."),
) -> None:
    """Run the benchmark suite once and say where its run was stored.

    Runs ``python -m pytest benchmarks --benchmark-only --kbench-profile P
    --kbench-store DIR [-k EXPR]`` in ``--root``; exit 1 if it fails.
    """
    profile = _check_profile(profile)
    _check_root(root)
    console = _console()
    try:
        path = ab.run_suite(sys.executable, profile=profile,
                            store=results.store_dir(store, root=root),
                            keyword=keyword, cwd=root, timeout=timeout, runner=_runner(ctx))
    except ab.SuiteError as err:
        _say(_console(stderr=True), f"kbench bench: {err}", style="red")
        raise typer.Exit(EXIT_REGRESSION) from None
    with _bad_input(results.ResultsError):
        stored = results.read_run(path)
    _say(console, f"Stored run: {path}")
    _say(console, f"{len(stored.results)} benchmark(s), TensorFlow {stored.tf_version}, "
                  f"machine {stored.machine_key}")


# --------------------------------------------------------------------------- compare, gate


RunsArgument = Annotated[Optional[list[str]], typer.Argument(
    help="run files, folders or globs (default: the whole store)", show_default=False)]
LatestOption = Annotated[bool, typer.Option(
    "--latest", help="only the newest run per TensorFlow version and machine")]
AlphaOption = Annotated[float, typer.Option(parser=_number(float, 0, 1, open_low=True),
                                             help="significance level of the Mann-Whitney test")]
BaselineIndex = Annotated[int, typer.Option(
    "--baseline", help="index of the baseline run, oldest first")]
MinChangeOption = Annotated[str, typer.Option(
    help="smallest change reported as faster/slower, e.g. 5% or 0.05")]
_DEFAULT_MIN_CHANGE = f"{stats.DEFAULT_MIN_FACTOR - 1:.0%}"


def _min_factor(min_change: str) -> float:
    return 1 + parse_fraction(min_change, "--min-change", allow_zero=True)


def _matrix(runs, baseline: int, alpha: float, min_factor: float):
    if not 0 <= baseline < len(runs):
        raise typer.BadParameter(f"must be a run index in 0..{len(runs) - 1}, got {baseline}",
                                 param_hint="'--baseline'")
    with _bad_input(compare.ComparisonError):
        return compare.compare_runs(runs, baseline, alpha=alpha, min_factor=min_factor)


@app.command("compare")
def compare_command(
    runs: RunsArgument = None,
    latest: LatestOption = False,
    baseline: BaselineIndex = 0,
    store: StoreOption = None,
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
    min_change: MinChangeOption = _DEFAULT_MIN_CHANGE,
) -> None:
    """Compare stored runs: per benchmark, median samples/s [CI], ratio and verdict."""
    min_factor = _min_factor(min_change)
    loaded = _load_runs(runs, latest=latest, store=store, at_least=2)
    print_matrix(_console(), _matrix(loaded, baseline, alpha, min_factor))


@app.command("check")
def check_command(
    runs: RunsArgument = None,
    latest: LatestOption = False,
    store: StoreOption = None,
) -> None:
    """Run the in-run ratio checks (e.g. tf.function >= 3x eager) on each run; exit 1 if one fails."""
    loaded = _load_runs(runs, latest=latest, store=store, at_least=1)
    console, failed = _console(), 0
    for run in loaded:
        _say(console, f"{run.label}  {run.source}")
        with _bad_input(compare.ComparisonError):
            outcomes = compare.run_checks(run)
        for outcome in outcomes:
            failed += outcome.status == "failed"
            _say(console, f"  {outcome}", style="red" if outcome.status == "failed" else None)
    if failed:
        _say(_console(stderr=True), f"{failed} ratio check(s) failed")
        raise typer.Exit(EXIT_REGRESSION)


@app.command()
def gate(
    baseline: Annotated[list[Path], typer.Option(
        help="a baseline run file; repeat for several sessions (pooled, one median each)",
        show_default=False)],
    candidate: Annotated[list[Path], typer.Option(
        help="a candidate run file; repeat for several sessions", show_default=False)],
    max_slowdown: Annotated[str, typer.Option(
        help="allowed slowdown, e.g. 10% or 0.10")] = "10%",
    policy: Annotated[Optional[Path], typer.Option(
        help="per-benchmark thresholds (TOML or JSON policy file)")] = None,
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
) -> None:
    """Gate candidate run(s) against baseline run(s).

    Exit 1 listing the benchmarks that are significantly slower (Mann-Whitney
    p < alpha) by more than the allowed slowdown, 0 otherwise, 2 for bad input.
    With one run a side the test is on rounds, which cannot see drift between
    sessions (a warning says so); with several, on one median per session.
    """
    allowed = parse_fraction(max_slowdown, "--max-slowdown")
    with _bad_input(results.ResultsError):
        sides = [[results.read_run(path) for path in paths] for paths in (baseline, candidate)]
        if len(baseline) == len(candidate) == 1:
            base_run, cand_run = sides[0][0], sides[1][0]
        else:
            base_run, cand_run = (ab.pool_runs(runs, source=f"{name}: medians of {len(runs)} "
                                                              "run(s)")
                                  for name, runs in zip(("baseline", "candidate"), sides))
    rules = _load_policy(policy)
    outcome = _gate(base_run, cand_run, max_slowdown=allowed, policy=rules, alpha=alpha)
    _print_gate(_console(), outcome)
    if len(baseline) == len(candidate) == 1:
        _say(_console(stderr=True), f"warning: {SINGLE_SESSION_WARNING}", style="yellow")
    raise typer.Exit(outcome.exit_code)


# --------------------------------------------------------------------------- ab


@app.command("ab")
def ab_command(
    ctx: typer.Context,
    baseline_python: Annotated[Path, typer.Option(
        help="interpreter of side A (e.g. a virtualenv's bin/python)", show_default=False)],
    candidate_python: Annotated[Path, typer.Option(
        help="interpreter of side B", show_default=False)],
    pairs: Annotated[int, typer.Option(
        parser=_positive_int, help="A B pairs to run")] = ab.DEFAULT_PAIRS,
    profile: Annotated[str, typer.Option(help="benchmark profile of every run")] = "smoke",
    keyword: KeywordOption = None,
    store: StoreOption = None,
    max_slowdown: Annotated[str, typer.Option(help="allowed slowdown of B, e.g. 10%")] = "10%",
    policy: Annotated[Optional[Path], typer.Option(help="per-benchmark thresholds")] = None,
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
    timeout: TimeoutOption = ab.DEFAULT_INVOCATION_TIMEOUT_S,
    root: RootOption = Path("."),
) -> None:
    """Benchmark two interpreters alternately (A B A B ...) in one job, pool, gate B vs A.

    Each run is stored; the per-round samples of each side are pooled and the
    candidate (B) is gated against the baseline (A): exit 1 on a significant
    slowdown beyond the allowed one, or when a run fails (naming its side).
    """
    profile = _check_profile(profile)
    allowed = parse_fraction(max_slowdown, "--max-slowdown")
    rules = _load_policy(policy)
    _check_root(root)
    for side, python in (("A", baseline_python), ("B", candidate_python)):
        with _bad_input(ValueError):
            ab.check_python(python, side)
    console = _console()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    with progress:
        task = progress.add_task("A/B", total=2 * pairs)

        def started(side: str, pair: int) -> None:
            done = 2 * (pair - 1) + ab.SIDES.index(side)
            progress.update(task, completed=done, description=f"pair {pair}, side {side}")

        try:
            outcome = ab.run_ab(baseline_python, candidate_python, pairs=pairs, profile=profile,
                                keyword=keyword, store=store, cwd=root, timeout=timeout,
                                on_invocation=started, runner=_runner(ctx))
        except ab.SuiteError as err:
            progress.stop()
            err_console = _console(stderr=True)
            if err.output_tail.strip():
                _say(err_console, err.output_tail)
            _say(err_console, f"kbench ab: {err}", style="red")
            raise typer.Exit(EXIT_REGRESSION) from None
        except results.ResultsError as err:
            raise CliError(str(err)) from None
        progress.update(task, completed=2 * pairs, description="done")
    for side in ab.SIDES:
        for path in outcome.paths(side):
            _say(console, f"side {side}: {path}")
    result = _gate(outcome.baseline, outcome.candidate, max_slowdown=allowed, policy=rules,
                   alpha=alpha)
    _print_gate(console, result)
    raise typer.Exit(result.exit_code)


# --------------------------------------------------------------------------- report, export


@app.command("report")
def report_command(
    runs: RunsArgument = None,
    latest: LatestOption = False,
    baseline: BaselineIndex = 0,
    store: StoreOption = None,
    out: Annotated[Optional[Path], typer.Option(
        help="folder the report is written to (default: reports)")] = None,
    name: Annotated[str, typer.Option(help="file name stem of the report")] = "report",
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
    min_change: MinChangeOption = _DEFAULT_MIN_CHANGE,
) -> None:
    """Write a Markdown and a self-contained HTML report (with plots) of stored runs."""
    from kbench import report  # imports matplotlib

    min_factor = _min_factor(min_change)
    loaded = _load_runs(runs, latest=latest, store=store, at_least=1)
    matrix = _matrix(loaded, baseline, alpha, min_factor)
    with _bad_input(report.ReportError, OSError):
        written = report.write_report(matrix, report.REPORT_DIR if out is None else out,
                                      name=name)
    console = _console()
    for kind, path in written.items():
        _say(console, f"{kind}: {path}")


# Where `kbench export --format tensorboard` writes unless told (next to the reports).
TENSORBOARD_DIR = "reports/tensorboard"


class ExportFormat(str, enum.Enum):
    github = "github"
    tensorboard = "tensorboard"


@app.command()
def export(
    export_format: Annotated[ExportFormat, typer.Option(
        "--format", help="github: github-action-benchmark customBiggerIsBetter JSON of one run; "
                         "tensorboard: scalars and hparams, one log dir per run",
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

    loaded = _load_runs(runs, latest=latest, store=store, at_least=1)
    console = _console()
    if export_format is ExportFormat.github:
        if len(loaded) != 1:
            raise CliError(f"--format github exports one run, got {len(loaded)}: "
                           f"{[r.source for r in loaded]}; name one file")
        document = json.dumps(report.github_benchmark_json(loaded[0]), indent=2)
        if output is None:
            typer.echo(document)
            return
        with _bad_input(OSError):
            output.write_text(document + "\n", encoding="utf-8")
        _say(console, f"github: {output}")
        return
    log_dir = output if output is not None else Path(TENSORBOARD_DIR)
    with _bad_input(report.ReportError, OSError):
        paths = report.write_tensorboard(loaded, log_dir)
    for path in paths:
        _say(console, f"tensorboard: {path}")


if __name__ == "__main__":
    main()
