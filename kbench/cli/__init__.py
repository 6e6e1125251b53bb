"""The ``kbench`` command: workflows, the machine, training, benchmarks, comparisons.

The CLI only wires and displays: workflows come from kbench.workflows,
training from kbench.training, stored runs from kbench.results, comparisons
and gating from kbench.compare, files from kbench.report, A/B runs from
kbench.ab. It renders what they return as rich tables.

Modules: ``_common`` (errors and exit codes, consoles, option parsers, loading
runs and policies, TensorFlow's logging), ``_options`` (options several commands
share), ``_tables`` and ``_progress`` (rich rendering), and one module per group
of commands: ``workflows`` (list, env, run), ``data`` (data), ``benchmarks``
(bench, ab), ``memory`` (memory) and ``runs`` (compare, check, gate, report, export).

Exit codes: 0 success; 1 a regression beyond the allowed slowdown (``gate``,
``ab``) or a benchmark run that failed; 2 bad arguments or input (a missing
or unreadable file, an unknown workflow, a malformed policy), reported as one
line on stderr, never a traceback.

TensorFlow is imported only by the commands that need it (``env``, ``run``,
``bench``, ``ab``, ``memory``) and matplotlib only by ``report`` and ``export``, so that
``kbench --help``, ``list``, ``data``, ``compare`` and ``gate`` start fast. It
is quiet: its start-up lines on stderr are shown only with ``kbench --verbose``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kbench.cli import benchmarks, data, memory, runs, workflows
from kbench.cli._common import (EXIT_BAD_INPUT, EXIT_REGRESSION, CliError, Group, parse_fraction,
                                quiet_tensorflow)

__all__ = ["EXIT_BAD_INPUT", "EXIT_REGRESSION", "CliError", "app", "main", "parse_fraction"]

app = typer.Typer(
    cls=Group,
    name="kbench",
    help="TensorFlow/Keras training workflows and benchmarks: list, run, benchmark, "
         "compare and gate stored runs, A/B two TensorFlow installs, report and export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def options(
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="show TensorFlow's start-up and C++ log lines on stderr (default: "
                          "TF_CPP_MIN_LOG_LEVEL=3 unless set, and its load notices dropped)",
    )] = False,
) -> None:
    """TensorFlow/Keras training workflows and benchmarks."""
    if not verbose:
        quiet_tensorflow()


# The commands, in the order `kbench --help` lists them.
COMMANDS = (
    ("list", workflows.list_workflows),
    ("env", workflows.env),
    ("run", workflows.run),
    ("data", data.data_command),
    ("bench", benchmarks.bench),
    ("compare", runs.compare_command),
    ("check", runs.check_command),
    ("gate", runs.gate_command),
    ("ab", benchmarks.ab_command),
    ("memory", memory.memory_command),
    ("report", runs.report_command),
    ("export", runs.export),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)


def main() -> None:
    """Entry point of the ``kbench`` console script."""
    app(prog_name="kbench")
