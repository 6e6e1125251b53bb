"""What every kbench command shares: errors and exit codes, consoles, option parsers, inputs.

Bad input is reported as one line on stderr with exit code 2, never a
traceback: commands raise :class:`CliError` (or turn a library's bad-input
error into one with :func:`bad_input`), option parsers raise
``typer.BadParameter``, and :class:`Group` prints either as one line.

TensorFlow is quiet unless ``kbench --verbose``: :func:`quiet_tensorflow` sets
its C++ log level for this process and its children, and :func:`import_tensorflow`
drops the notices it prints while it loads, which no log level hides.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperGroup

from kbench import _validate, compare, results

# 1: a regression (or a failed benchmark run); 2: bad arguments or input.
EXIT_REGRESSION = compare.EXIT_REGRESSION
EXIT_BAD_INPUT = compare.EXIT_BAD_INPUT

# Width of rich output when stdout is not a terminal (CI logs, pipes, tests)
# and $COLUMNS is unset: rich would assume 80 columns and wrap benchmark names
# (up to ~80 characters, e.g. test_prefetch[cpu-b64-fit-prefetch=autotune map=off])
# across lines; 200 fits a name and three runs' columns on one line.
PIPE_WIDTH = 200


class CliError(typer.TyperException):
    """Bad arguments or input: reported as one line on stderr, exit code 2."""

    exit_code = EXIT_BAD_INPUT


# --------------------------------------------------------------------------- errors


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _report_error(err: typer.TyperException) -> None:
    ctx = getattr(err, "ctx", None)
    message = one_line(err.format_message())
    if ctx is None:
        print(f"kbench: error: {message}", file=sys.stderr)
    elif message:  # empty for "no arguments: help shown"
        print(f"{ctx.command_path}: error: {message} (see '{ctx.command_path} --help')",
              file=sys.stderr)


class Group(TyperGroup):
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


@contextlib.contextmanager
def bad_input(*errors: type[BaseException]) -> Iterator[None]:
    """Turn the given errors (bad input by their contract) into a one-line exit 2."""
    try:
        yield
    except errors as err:
        raise CliError(str(err)) from None


# --------------------------------------------------------------------------- TensorFlow's logging


# TensorFlow's C++ log level, read from the environment when TensorFlow is imported.
TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# Its value unless --verbose or the user set it: INFO, WARNING and ERROR lines are
# dropped, FATAL ones (a crash's last words) and Python errors are not. Measured with
# TF 2.21 on this CPU-only VM by `kbench env`'s stderr: 1 hides cpu_feature_guard's
# "This TensorFlow binary is optimized to use available CPU instructions" (2 lines),
# 2 nothing more, 3 also cuda_platform's "failed call to cuInit" (an E line). No level
# hides what the libraries log as they load (see TF_LOAD_NOTICE).
QUIET_TF_LOG_LEVEL = "3"
# A line TensorFlow's libraries print while they load, before any log level applies:
# absl's banner "WARNING: All log messages before absl::InitializeLog() is called are
# written to STDERR", then INFO or WARNING lines in absl's format (the seconds field
# holds the Unix time while absl is uninitialised), e.g.
# "I0000 00:00:1796245389.838424    2672 port.cc:153] oneDNN custom operations are on. ..."
# and "... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be
# used." (twice each, TF 2.21: two libraries log them). ERROR and FATAL lines are kept.
TF_LOAD_NOTICE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] )")


def quiet_tensorflow(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set TensorFlow's C++ log level to :data:`QUIET_TF_LOG_LEVEL`, unless it is already set.

    Worker processes inherit it, and fingerprints record it (``env.TF_CPP_MIN_LOG_LEVEL``).
    """
    environ.setdefault(TF_LOG_LEVEL_ENV, QUIET_TF_LOG_LEVEL)


def is_verbose(ctx: typer.Context) -> bool:
    """Whether ``kbench --verbose`` was given."""
    return bool(ctx.find_root().params.get("verbose"))


@contextlib.contextmanager
def dropping_stderr_lines(pattern: re.Pattern) -> Iterator[None]:
    """Hold back what is written to file descriptor 2 (by C++ code too) while the block runs,
    then write every line that does not match ``pattern`` to sys.stderr."""
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            stream.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                if sys.__stderr__ is not None:
                    sys.__stderr__.flush()
                os.dup2(saved, 2)
                held.seek(0)
                kept = [line for line in held.read().decode(errors="replace").splitlines(True)
                        if not pattern.match(line)]
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    finally:
        os.close(saved)


def import_tensorflow(ctx: typer.Context) -> None:
    """Import TensorFlow, without its load notices (:data:`TF_LOAD_NOTICE`) unless --verbose."""
    if "tensorflow" in sys.modules or is_verbose(ctx):
        importlib.import_module("tensorflow")
        return
    with dropping_stderr_lines(TF_LOAD_NOTICE):
        importlib.import_module("tensorflow")


# --------------------------------------------------------------------------- output


def say(console: Console, text: str, style: str | None = None) -> None:
    """One plain line: no markup (benchmark keys hold brackets), no highlighting, no wrapping."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr), :data:`PIPE_WIDTH` wide when not a terminal."""
    out = Console(stderr=stderr)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, width=PIPE_WIDTH)
    return out


def warn(text: str) -> None:
    """A one-line warning on stderr."""
    say(console(stderr=True), f"warning: {one_line(text)}", style="yellow")


# --------------------------------------------------------------------------- option parsers


_FRACTION = re.compile(r"^\s*(?P<number>[0-9]*\.?[0-9]+)\s*(?P<percent>%?)\s*$")


def parse_fraction(text: str, option: str, *, allow_zero: bool = False) -> float:
    """A share given as ``"10%"`` or ``"0.10"``, as a float strictly below 1.

    The range is checked here, not by kbench._validate, so that the message
    quotes what was typed: ``'100%'``, not the 1.0 it parses to.

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


def _parser(kind: type, check: Callable, **bounds) -> Callable[[str], float]:
    """An option parser: the text as ``kind`` (int or float), then a kbench._validate check.

    Typer's own messages do not show the value; these quote it, and click
    prefixes the option ("Invalid value for '--epochs': ...").
    """
    expected = "an integer" if kind is int else "a number"

    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"expected {expected}, got {text!r}") from None
        return check("value", value, error=typer.BadParameter, **bounds)
    return parse


def check_option(option: str, check: Callable, value, *args, **bounds):
    """``value`` of ``option`` through a kbench._validate ``check``, as the option parsers do:
    a bad value is a typer.BadParameter naming the option and quoting the value."""
    try:
        return check("value", value, *args, **bounds)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint=f"'{option}'") from None


positive_int = _parser(int, _validate.check_positive_int)
open_fraction = _parser(float, _validate.check_fraction)


def number_at_least(low: float) -> Callable[[str], float]:
    """An option parser of a finite number >= ``low``."""
    return _parser(float, _validate.check_number, low=low)


# --------------------------------------------------------------------------- inputs


def runner(ctx: typer.Context) -> Callable[..., subprocess.CompletedProcess]:
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
    with bad_input(results.ResultsError):
        runs = [results.read_run(path) for path in files]
    found, problems = results.scan(others) if others else ([], [])
    named = {str(Path(r.source).resolve()) for r in runs}
    runs += [r for r in found if str(Path(r.source).resolve()) not in named]
    return sorted(runs, key=lambda r: (r.timestamp, r.source)), list(problems)


def load_runs(sources: Sequence[str] | None, *, latest: bool, store: Path | None,
              at_least: int) -> list:
    """The runs of ``sources`` (default: the store), saying on stderr which files were skipped.

    Raises:
        CliError: a named file is missing or unreadable, or fewer than ``at_least`` runs.
    """
    runs, problems = _read_sources(sources or [], store)
    err = console(stderr=True)
    for problem in problems:
        say(err, f"skipped {problem.path}: {one_line(problem.reason)}", style="yellow")
    if latest:
        runs = results.latest(runs)
    if len(runs) < at_least:
        where = ", ".join(repr(s) for s in sources) if sources else \
            repr(str(results.store_dir(store)))
        raise CliError(f"need at least {at_least} run(s), found {len(runs)} in {where}")
    return runs


def load_policy(path: Path | None) -> compare.Policy | None:
    """The gate policy in ``path`` (None: no policy); a missing or malformed file exits 2."""
    if path is None:
        return None
    if not path.is_file():
        raise CliError(f"no such policy file: {str(path)!r}")
    with bad_input(compare.ComparisonError):
        return compare.load_policy(path)


def gate(baseline, candidate, *, max_slowdown: float, policy: compare.Policy | None,
         alpha: float, max_startup_factor: float | None = compare.DEFAULT_MAX_STARTUP_FACTOR
         ) -> compare.GateResult:
    """:func:`kbench.compare.gate`, with runs that cannot be compared reported as bad input."""
    with bad_input(compare.ComparisonError):
        return compare.gate(baseline, candidate, max_slowdown=max_slowdown, policy=policy,
                            alpha=alpha, max_startup_factor=max_startup_factor)
