"""Options and arguments that several commands declare alike, each declared once."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from kbench import _format, compare, data, stats, workflows
from kbench.cli._common import CliError, number_at_least, open_fraction, parse_fraction


def str_enum(name: str, values: Sequence[str]) -> type[enum.Enum]:
    """An Enum whose values are ``values``: typer shows them as choices and rejects others."""
    return enum.Enum(name, [(v, v) for v in values], type=str)


# --------------------------------------------------------------------------- data

DatasetName = str_enum("DatasetName", workflows.DATASETS)
DataDirOption = Annotated[Optional[Path], typer.Option(
    help="a folder holding the four IDX files of the dataset (mnist or fashion_mnist), "
         "gzipped or not")]


def check_data_dir(data_dir: Path | None, dataset: str) -> None:
    """Refuse ``--data-dir`` for a dataset not read from IDX folders (mnist_5k, synthetic)."""
    if data_dir is not None and dataset not in data.KERAS_DATASETS:
        raise CliError(f"--data-dir only applies to the datasets {', '.join(data.KERAS_DATASETS)}, "
                       f"not to {dataset!r}")

# --------------------------------------------------------------------------- running the suite

ProfileOption = Annotated[Optional[str], typer.Option(
    help="benchmark profile: smoke, default or full (default: $KBENCH_PROFILE or 'default')")]
StoreOption = Annotated[Optional[Path], typer.Option(
    help="the results store (default: $KBENCH_STORE or reports/runs)")]
KeywordOption = Annotated[Optional[str], typer.Option(
    "-k", "--keyword", help="pytest -k expression selecting benchmarks")]
TimeoutOption = Annotated[float, typer.Option(
    parser=number_at_least(1), help="seconds one run of the suite may take")]
RootOption = Annotated[Path, typer.Option(help="the kbench project folder (holds benchmarks/)")]

# --------------------------------------------------------------------------- stored runs

RunsArgument = Annotated[Optional[list[str]], typer.Argument(
    help="run files, folders or globs (default: the whole store)", show_default=False)]
LatestOption = Annotated[bool, typer.Option(
    "--latest", help="only the newest run per TensorFlow version and machine")]
AlphaOption = Annotated[float, typer.Option(parser=open_fraction,
                                             help="significance level of the Mann-Whitney test")]
BaselineIndex = Annotated[int, typer.Option(
    "--baseline", help="index of the baseline run, oldest first")]
MinChangeOption = Annotated[str, typer.Option(
    help="smallest change reported as faster/slower, e.g. 5% or 0.05")]
DEFAULT_MIN_CHANGE = _format.share(stats.DEFAULT_MIN_FACTOR - 1, digits=0)
# The default --max-slowdown of gate and ab, as typed.
DEFAULT_MAX_SLOWDOWN = _format.share(compare.DEFAULT_MAX_SLOWDOWN, digits=0)


def min_factor(min_change: str) -> float:
    """The ratio a ``--min-change`` share stands for: 5% -> 1.05."""
    return 1 + parse_fraction(min_change, "--min-change", allow_zero=True)
