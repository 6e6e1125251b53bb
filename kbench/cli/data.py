"""``kbench data``: where each dataset would load from, its size, its checksums, how to get it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from kbench import _format, data, workflows
from kbench.cli._common import console
from kbench.cli._options import DataDirOption, DatasetName, check_data_dir

_STATUS_STYLE = {"ok": "green", "not checked": "yellow", "mismatch": "bold red",
                 "missing": "red"}


def _checks(status: data.DataStatus) -> Text:
    """The status, then what each file that is not ok says (or, all ok, how)."""
    details = [f"{Path(c.path).name}: {c.detail}" for c in status.files if c.status != "ok"]
    if not details:
        details = sorted({c.detail for c in status.files}) or (
            ["generated"] if status.source == "generated" else [])
    return Text.assemble((status.status, _STATUS_STYLE[status.status]),
                         *(f"\n{detail}" for detail in details))


def status_table(statuses: list[data.DataStatus]) -> Table:
    """One row per dataset: source and path, size on disk, checksums, how to get it."""
    table = Table(title="datasets: where they load from now, and their checksums",
                  title_justify="left")
    for column in ("dataset", "source", "path", "size", "checksums", "to get it"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for status in statuses:
        table.add_row(Text(status.name), Text(status.source), Text(status.place or ""),
                      _format.size(status.size_bytes) if status.size_bytes else "", _checks(status),
                      Text("\n".join(f"- {hint}" for hint in status.hints)))
    return table


def data_command(
    names: Annotated[Optional[list[DatasetName]], typer.Argument(
        help="datasets to show (default: all)", show_default=False)] = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="the statuses as JSON")] = False,
) -> None:
    """Show where each dataset would load from, its size and its checksums (never downloads).

    Each file found is hashed and compared with its published checksum (the archive's,
    else its decompressed content's): ok, mismatch, missing or not checked.
    """
    chosen = [n.value for n in names] if names else list(workflows.DATASETS)
    if names:  # all datasets: --data-dir applies to those it can
        for name in chosen:
            check_data_dir(data_dir, name)
    statuses = [data.dataset_status(name, data_dir=_data_dir(data_dir, name)) for name in chosen]
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(s) for s in statuses], indent=2))
        return
    console().print(status_table(statuses))


def _data_dir(data_dir: Path | None, name: str) -> Path | None:
    """--data-dir for the datasets read from IDX folders; the others ignore it."""
    return data_dir if name in data.KERAS_DATASETS else None
