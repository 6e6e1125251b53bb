"""Exact gating with a ratchet: a run's exact counters (kbench.counters) against the
committed expectations of its TensorFlow version.

Each benchmark's traces per compiled function, XLA compilations and graph
sizes are the same on every run of one TensorFlow version and workflow, so
they are compared for equality: any change fails, an improvement too (PyTorch
gates its compile-time benchmarks the same way, so the expected values move
only on purpose). The expectations live in ``benchmarks/expected/tf-<version>.toml``,
one table per benchmark key; ``kbench check --exact --update`` writes them
from a run, keeping the entries of benchmarks the run did not select.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from kbench.compare.matrix import ComparisonError
from kbench.results import Run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only; pyproject declares tomli there
    import tomli as tomllib

__all__ = ["EXPECTED_DIR", "ExactChange", "ExactOutcome", "check_exact", "expectations_path",
           "expected_counters", "read_expectations", "write_expectations"]

# Where the expectations are committed, relative to the repository root.
EXPECTED_DIR = Path("benchmarks") / "expected"
# The fields compared, each a benchmark's table in the expectations.
_FIELDS = ("traces", "graph_nodes", "xla_compilations")


def expectations_path(run: Run, folder: Path = EXPECTED_DIR) -> Path:
    """The expectations file of ``run``'s TensorFlow version."""
    return Path(folder) / f"tf-{run.tf_version}.toml"


def expected_counters(run: Run) -> dict[str, dict[str, Any]]:
    """What the run's exact counters are, per benchmark key, as the expectations hold
    them (benchmarks without counters, e.g. input-only ones, are left out)."""
    out = {}
    for key, record in sorted(run.results.items()):
        found = record.counters
        if found is None:
            continue
        entry: dict[str, Any] = {"traces": dict(sorted(found.traces.items())),
                                 "graph_nodes": dict(sorted(found.graph_nodes.items()))}
        if found.xla_compilations is not None:
            entry["xla_compilations"] = found.xla_compilations
        out[key] = entry
    return out


def read_expectations(path: Path) -> dict[str, dict[str, Any]]:
    """The expectations in ``path``.

    Raises:
        ComparisonError: the file is missing (saying how to write it) or malformed,
            quoting what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise ComparisonError(f"no exact expectations at {str(path)!r}: write them from a run "
                              f"with `kbench check --exact --update`")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ComparisonError(f"{path}: not a readable TOML file: {err}") from None
    for key, entry in document.items():
        if not isinstance(entry, Mapping) or set(entry) - set(_FIELDS):
            raise ComparisonError(f"{path}: [{key!r}] must be a table of {_FIELDS}, got "
                                  f"{entry!r:.120}")
    return document


def write_expectations(run: Run, path: Path) -> dict[str, dict[str, Any]]:
    """Write ``run``'s counters into ``path``, keeping the entries of benchmarks the run
    did not have; returns what the file now holds."""
    path = Path(path)
    found = expected_counters(run)
    if not found:
        raise ComparisonError(f"{run.label} ({run.source or 'in memory'}) has no exact "
                              "counters to write: its records predate record schema 4, or "
                              "it ran no training benchmark")
    kept = read_expectations(path) if path.is_file() else {}
    merged = {**kept, **found}
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# kbench check --exact: the exact counters of each benchmark on TensorFlow "
              f"{run.tf_version}\n# (kbench.counters). Written by `kbench check --exact "
              f"--update` from {run.label}.\n\n")
    path.write_text(header + tomli_w.dumps(dict(sorted(merged.items()))), encoding="utf-8")
    return merged


@dataclasses.dataclass(frozen=True)
class ExactChange:
    """One counter of one benchmark that differs from its expectation."""

    key: str
    field: str
    expected: Any
    found: Any

    def __str__(self) -> str:
        direction = ""
        if isinstance(self.expected, int) and isinstance(self.found, int):
            direction = " (fewer: an improvement)" if self.found < self.expected else " (more)"
        return f"{self.key}: {self.field} expected {self.expected!r}, got {self.found!r}{direction}"


@dataclasses.dataclass(frozen=True)
class ExactOutcome:
    """What ``check_exact`` found: the changes, the benchmarks checked, and those the
    expectations do not know (new ones: a change too)."""

    changes: tuple[ExactChange, ...]
    checked: tuple[str, ...]
    unknown: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.changes and not self.unknown


def _flatten(entry: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for field in _FIELDS:
        value = entry.get(field)
        if isinstance(value, Mapping):
            out.update({f"{field}.{name}": n for name, n in value.items()})
        elif value is not None:
            out[field] = value
    return out


def check_exact(run: Run, expectations: Mapping[str, Mapping[str, Any]]) -> ExactOutcome:
    """Compare the run's exact counters with ``expectations``: every field must be equal.
    Benchmarks of the expectations that the run did not select are not checked.

    Raises:
        ComparisonError: the run has no counters at all (its records predate record
            schema 4, or it ran no training benchmark): nothing could be checked.
    """
    found = expected_counters(run)
    if not found:
        raise ComparisonError(f"{run.label} ({run.source or 'in memory'}) has no exact "
                              "counters to check: its records predate record schema 4, or "
                              "it ran no training benchmark")
    changes, unknown, checked = [], [], []
    for key, entry in found.items():
        if key not in expectations:
            unknown.append(key)
            continue
        checked.append(key)
        want, got = _flatten(expectations[key]), _flatten(entry)
        for field in sorted(set(want) | set(got)):
            if want.get(field) != got.get(field):
                changes.append(ExactChange(key, field, want.get(field), got.get(field)))
    return ExactOutcome(tuple(changes), tuple(checked), tuple(unknown))
