"""Runs of benchmark records, read from pytest-benchmark JSON, and the store of runs.

A benchmark session writes one pytest-benchmark JSON document: the machine
fingerprint in ``machine_info["kbench"]`` (schema in kbench.fingerprint) and,
per benchmark, a :class:`kbench.record.BenchmarkRecord` in ``extra_info``
(schema in kbench.record). This module turns such a document into a
:class:`Run` of those records that comparisons and reports read; it never
measures and never formats.

It also keeps the store of runs: one file per session at
``<store>/<tf-version>/<machine-key>/<timestamp>.json``, laid out by what
makes numbers comparable (:func:`run_path`), written atomically
(:func:`write_run`) and read back one file at a time (:func:`read_run`) or a
whole tree at once, unreadable files reported and skipped (:func:`scan`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kbench import _files
from kbench import fingerprint as kfingerprint
from kbench.record import BenchmarkRecord, RecordError

# Where runs are stored unless told otherwise: an explicit path (the pytest
# option --kbench-store, a CLI flag), then $KBENCH_STORE, then this.
DEFAULT_STORE = "reports/runs"
STORE_ENV = "KBENCH_STORE"


class ResultsError(ValueError):
    """A result document or record that cannot be read; the message says which and why."""


def parse_datetime(value: Any, where: str = "run") -> dt.datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; naive means UTC.

    pytest-benchmark >= 5 writes ``datetime.now(timezone.utc).isoformat()``;
    4.x wrote ``datetime.utcnow().isoformat()``, naive but UTC.
    """
    if not isinstance(value, str):
        raise ResultsError(f"{where}: datetime must be an ISO 8601 str, got {value!r:.80}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value  # 3.10 lacks "Z"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ResultsError(f"{where}: datetime must be ISO 8601 "
                           f"(e.g. 2026-11-23T10:37:39.231926+00:00), got {value!r:.80}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Run:
    """One benchmark session: when, on what, and its results by key.

    Attributes:
        datetime: pytest-benchmark's ISO timestamp of the session.
        fingerprint: kbench's machine/software fingerprint (validated).
        results: BenchmarkRecord by key (each record's ``key``), read-only.
        source: where the run was read from (a path), or "" if built in memory.
    """

    datetime: str
    fingerprint: Mapping[str, Any] = dataclasses.field(repr=False)
    results: Mapping[str, BenchmarkRecord] = dataclasses.field(repr=False)
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "run"
        parse_datetime(self.datetime, where)
        try:
            kfingerprint.validate(self.fingerprint)
        except ValueError as err:
            raise ResultsError(f"{where}: bad fingerprint: {err}") from err
        object.__setattr__(self, "results", MappingProxyType(dict(self.results)))

    @property
    def timestamp(self) -> dt.datetime:
        """``datetime`` parsed, in UTC: what runs are ordered by."""
        return parse_datetime(self.datetime, self.source or "run")

    @property
    def tf_version(self) -> str:
        return str(self.fingerprint["software"]["tensorflow"])

    @property
    def machine_key(self) -> str:
        return str(self.fingerprint["machine_key"])

    @property
    def label(self) -> str:
        """A short column name: ``tf<version> <machine key> <datetime to the second>``."""
        return f"tf{self.tf_version} {self.machine_key} {self.datetime[:19]}"


# How many keys an error message lists before "... and N more".
LISTED_KEYS = 5


def listing(keys: Sequence[str]) -> str:
    """``['a', 'b', ... and 3 more']``: keys for an error message."""
    shown = ", ".join(repr(k) for k in keys[:LISTED_KEYS])
    more = len(keys) - LISTED_KEYS
    return f"[{shown}{f', ... and {more} more' if more > 0 else ''}]"


def run_name(index: int, run: Run) -> str:
    """``run 1 (reports/runs/...json)``: a run in an error message."""
    return f"run {index} ({run.source or run.label})"


def check_same_benchmarks(runs: Sequence[Run], reference: int = 0, *, action: str = "compare",
                          error: type[Exception] = ResultsError) -> tuple[str, ...]:
    """The reference run's benchmark keys, if every run has exactly those.

    Raises:
        ``error``: "cannot <action> runs with different benchmark sets", naming
        what each other run lacks or has in addition.
    """
    keys = tuple(runs[reference].results)
    problems = []
    for i, run in enumerate(runs):
        missing = [k for k in keys if k not in run.results]
        extra = [k for k in run.results if k not in runs[reference].results]
        if missing or extra:
            parts = ([f"lacks {listing(missing)}"] if missing else []) \
                + ([f"has extra {listing(extra)}"] if extra else [])
            problems.append(f"{run_name(i, run)} {' and '.join(parts)}")
    if problems:
        raise error(f"cannot {action} runs with different benchmark sets; against "
                    f"{run_name(reference, runs[reference])}: {'; '.join(problems)}")
    return keys


def record_from_json(benchmark: Mapping, where: str = "benchmark") -> BenchmarkRecord | None:
    """The BenchmarkRecord of one pytest-benchmark entry; None if it holds no kbench samples
    (e.g. a non-kbench benchmark in the same session)."""
    if not isinstance(benchmark, Mapping):
        raise ResultsError(f"{where}: a benchmark entry must be an object, got {benchmark!r:.80}")
    extra = benchmark.get("extra_info") or {}
    if not isinstance(extra, Mapping):
        raise ResultsError(f"{where} {benchmark.get('name')!r}: extra_info must be an object, "
                           f"got {extra!r:.80}")
    if "samples_per_s" not in extra:
        return None
    key = benchmark.get("name")
    if not isinstance(key, str) or not key:
        raise ResultsError(f"{where}: a benchmark name must be a non-empty str, got {key!r}")
    try:
        return BenchmarkRecord.from_extra_info(extra, key=key, group=benchmark.get("group"))
    except RecordError as err:
        raise ResultsError(f"{where} {err}") from None


def run_from_json(document: Mapping, source: str = "") -> Run:
    """A Run from a pytest-benchmark JSON document (as json.load returns it)."""
    where = source or "document"
    if not isinstance(document, Mapping):
        raise ResultsError(f"{where}: not a pytest-benchmark JSON object")
    missing = [k for k in ("machine_info", "benchmarks", "datetime") if k not in document]
    if missing:
        raise ResultsError(f"{where}: not a pytest-benchmark JSON document (no {missing})")
    machine_info = document["machine_info"] or {}
    if not isinstance(machine_info, Mapping):
        raise ResultsError(f"{where}: machine_info must be an object, got {machine_info!r:.80}")
    fp = machine_info.get("kbench")
    if fp is None:
        raise ResultsError(f"{where}: machine_info has no 'kbench' fingerprint: not a kbench run")
    if not isinstance(document["benchmarks"], list):
        raise ResultsError(f"{where}: benchmarks must be a list, "
                           f"got {document['benchmarks']!r:.80}")
    results: dict[str, BenchmarkRecord] = {}
    for entry in document["benchmarks"]:
        result = record_from_json(entry, where)
        if result is None:
            continue
        if result.key in results:
            raise ResultsError(f"{where}: benchmark {result.key!r} appears twice")
        results[result.key] = result
    return Run(datetime=document["datetime"], fingerprint=fp, results=results, source=source)


# --------------------------------------------------------------------------- the store

# A tf-version or machine-key becomes a folder name: no separators, no "..",
# nothing a shell or Windows would trip on. machine_key() slugs always pass;
# TF versions look like 2.21.0, 2.22.0-dev20260101 or 2.21.0rc1.
_PATH_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# File names are the session's UTC time in ISO 8601 basic format: colon-free
# (valid on every filesystem), sorted by name = sorted by time, and to the
# microsecond so that two sessions never share a name.
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
# Stored files are laid out as pytest-benchmark writes its own (indent 4,
# ASCII escapes): a stored run is a pytest-benchmark file in every respect.
_JSON_OPTIONS = {"indent": 4, "ensure_ascii": True}


@dataclasses.dataclass(frozen=True)
class Problem:
    """A file :func:`scan` could not read as a run, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class UnreadableRunError(ResultsError):
    """A stored file that is not a readable kbench run: ``path`` and ``reason``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")


def store_dir(store: str | os.PathLike | None = None, *,
              environ: Mapping[str, str] | None = None,
              root: str | os.PathLike | None = None) -> Path:
    """The store folder: ``store`` if given, else ``$KBENCH_STORE``, else DEFAULT_STORE.

    Args:
        store: an explicit folder (a command-line option); "" counts as not given.
        environ: where to look up STORE_ENV; default ``os.environ``.
        root: the folder DEFAULT_STORE is relative to (e.g. pytest's rootdir);
            default the working directory. Explicit and environment paths are
            taken as given (relative to the working directory).
    """
    environ = os.environ if environ is None else environ
    for chosen in (store, environ.get(STORE_ENV)):
        if chosen is not None and str(chosen).strip():
            return Path(chosen).expanduser()
    return Path(root) / DEFAULT_STORE if root is not None else Path(DEFAULT_STORE)


def _path_part(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _PATH_PART.fullmatch(value):
        raise ResultsError(f"{what} must be a plain name ({_PATH_PART.pattern}) to be a "
                           f"store folder, got {value!r}")
    return value


def run_path(store: str | os.PathLike | None, fingerprint: Mapping,
             datetime_iso: str) -> Path:
    """Where a run belongs: ``<store>/<tf-version>/<machine-key>/<UTC timestamp>.json``."""
    if not isinstance(fingerprint, Mapping):
        raise ResultsError(f"fingerprint must be a dict, got {fingerprint!r:.80}")
    software = fingerprint.get("software")
    tf_version = software.get("tensorflow") if isinstance(software, Mapping) else None
    moment = parse_datetime(datetime_iso, "run")
    return (store_dir(store)
            / _path_part(tf_version, "fingerprint software.tensorflow")
            / _path_part(fingerprint.get("machine_key"), "fingerprint machine_key")
            / f"{moment.strftime(_TIMESTAMP_FORMAT)}.json")


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):  # e.g. a Run's read-only extra
        return dict(value)
    raise TypeError(f"{type(value).__name__} {value!r:.80} is not JSON-serializable")


def _benchmark_stats(round_s: Sequence[float]) -> dict:
    """pytest-benchmark's per-benchmark "stats" object for these round times."""
    import numpy as np

    data = np.asarray(round_s, dtype=float)
    q1, median, q3 = (float(v) for v in np.percentile(data, [25, 50, 75]))
    stddev = float(data.std(ddof=1)) if data.size > 1 else 0.0
    return {"min": float(data.min()), "max": float(data.max()), "mean": float(data.mean()),
            "stddev": stddev, "rounds": int(data.size), "median": median, "iqr": q3 - q1,
            "q1": q1, "q3": q3, "iqr_outliers": 0, "stddev_outliers": 0, "outliers": "0;0",
            "ld15iqr": float(data.min()), "hd15iqr": float(data.max()),
            "ops": 1 / float(data.mean()), "total": float(data.sum()), "iterations": 1,
            "data": [float(v) for v in data]}


def run_document(records: Mapping[str, BenchmarkRecord], fingerprint: Mapping, datetime: str,
                 *, source: str = "benchmarks/test_fake.py") -> dict:
    """The pytest-benchmark JSON document of a session that measured ``records`` (by
    benchmark name), for runs measured outside pytest (kbench.lockstep_ab) and tests."""
    benchmarks = []
    for key, record in records.items():
        benchmarks.append({
            "group": record.group, "name": key, "fullname": f"{source}::{key}",
            "params": None, "param": None, "extra_info": record.to_extra_info(),
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 1,
                        "max_time": 1.0, "min_time": 5e-06, "warmup": False},
            "stats": _benchmark_stats(record.round_s or [1.0]),
        })
    return {"machine_info": {"kbench": dict(fingerprint), "python_implementation": "CPython"},
            "commit_info": {}, "benchmarks": benchmarks, "datetime": datetime,
            "version": "5.2.3"}


def write_run(document: Mapping, store: str | os.PathLike | None = None, *,
              fsync=os.fsync) -> Path:
    """Validate a pytest-benchmark JSON document as a run and store it atomically.

    Args:
        document: what pytest-benchmark writes (as json.load returns it), with
            kbench's fingerprint in ``machine_info["kbench"]``.
        store: the store folder; default :func:`store_dir`.
        fsync: ``os.fsync``-like; a seam for tests.

    Returns:
        The file written, :func:`run_path` of the run.

    Raises:
        ResultsError: the document is not a kbench run, or the path already
            holds a different run (it is never overwritten).
    """
    run = run_from_json(document, source="run to store")
    path = run_path(store, run.fingerprint, run.datetime)
    try:
        data = json.dumps(document, default=_json_default, **_JSON_OPTIONS).encode("ascii")
    except (TypeError, ValueError) as err:
        raise ResultsError(f"run to store: cannot encode as JSON: {err}") from err
    if path.exists():
        if path.read_bytes() == data:
            return path  # the same run stored again: nothing to do
        raise ResultsError(f"{path} already holds a different run with datetime "
                           f"{run.datetime!r}; not overwriting it")
    return _files.atomic_write_bytes(path, data, fsync=fsync)


def _strip_source(message: str, source: str) -> str:
    """An error message without the leading file name (Problem keeps them apart)."""
    if message.startswith(source):
        return message[len(source):].lstrip(": ") or message
    return message


def _json_error_reason(err: json.JSONDecodeError, text: str) -> str:
    if not text.strip():
        return "empty file"
    where = f"{err.msg} at line {err.lineno} column {err.colno}"
    if err.pos >= len(text.rstrip()):
        return f"truncated JSON ({where}: the file ends early)"
    return f"not valid JSON ({where})"


def read_run(path: str | os.PathLike) -> Run:
    """The Run stored in ``path``.

    Raises:
        UnreadableRunError (a ResultsError): names the file and the cause —
            cannot be read, not UTF-8, truncated or invalid JSON, not a kbench
            run, an unsupported schema version, bad samples or fingerprint.
    """
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise UnreadableRunError(path, f"cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise UnreadableRunError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") \
            from err
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise UnreadableRunError(path, _json_error_reason(err, text)) from err
    try:
        return run_from_json(document, source=source)
    except ResultsError as err:
        raise UnreadableRunError(path, _strip_source(str(err), source)) from err


def _is_glob(source: str) -> bool:
    return any(char in source for char in "*?[")


def _expand(source: str | os.PathLike) -> tuple[list[Path], Problem | None]:
    """The files one source names: itself, every *.json under a folder, or a glob's matches."""
    path = Path(source).expanduser()
    if path.is_dir():
        return sorted(p for p in path.rglob("*.json") if p.is_file()), None
    if path.exists():
        return [path], None
    text = str(source)
    if _is_glob(text):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        files = [p for p in matches if p.is_file()]
        for folder in (p for p in matches if p.is_dir()):
            files.extend(sorted(p for p in folder.rglob("*.json") if p.is_file()))
        if files:
            return files, None
        return [], Problem(text, "no file matches this pattern")
    return [], Problem(text, "no such file or folder")


def _sources(sources: Any) -> tuple[list[str | os.PathLike], bool]:
    """(sources as a list, whether they are the default store)."""
    if sources is None:
        return [store_dir()], True
    if isinstance(sources, (str, os.PathLike)):
        return [sources], False
    if not isinstance(sources, Iterable):
        raise ResultsError(f"sources must be paths, folders or globs, got {sources!r:.80}")
    return list(sources), False


def scan(sources: Sequence[str | os.PathLike] | str | os.PathLike | None = None
         ) -> tuple[list[Run], list[Problem]]:
    """Read every run the sources name; unreadable files are reported, not fatal.

    Args:
        sources: files, folders (every ``*.json`` below them) and glob patterns
            (``**`` allowed); a single path is one source. None reads the whole
            store (:func:`store_dir`); a store that does not exist yet holds no
            runs, while a named source that matches nothing is a Problem.

    Returns:
        (runs oldest first — by datetime, then path —, problems in path order).
        A file named by several sources is read once.
    """
    sources, is_store = _sources(sources)
    runs: list[Run] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for source in sources:
        if is_store and not Path(source).exists():
            continue
        files, problem = _expand(source)
        if problem is not None:
            problems.append(problem)
        for file in files:
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            try:
                runs.append(read_run(file))
            except UnreadableRunError as err:
                problems.append(Problem(err.path, err.reason))
    runs.sort(key=lambda run: (run.timestamp, run.source))
    problems.sort(key=lambda p: p.path)
    return runs, problems


# Run attributes whose values are hashable, so runs can be grouped by them.
_GROUPABLE = frozenset({"datetime", "source"} | {
    name for name, value in vars(Run).items() if isinstance(value, property)})


def latest(runs: Iterable[Run], by: Sequence[str] = ("tf_version", "machine_key")) -> list[Run]:
    """The newest run of each group of runs that agree on the ``by`` attributes.

    Args:
        runs: Run records, in any order.
        by: Run attribute names (e.g. tf_version, machine_key); () keeps only
            the newest run overall.

    Returns:
        One run per group, oldest first (as :func:`scan` orders runs).
    """
    if isinstance(by, str):
        by = (by,)
    for name in by:
        if name not in _GROUPABLE:
            raise ResultsError(f"latest: cannot group runs by {name!r}; "
                               f"choose from {sorted(_GROUPABLE)}")
    newest: dict[tuple, Run] = {}
    for run in sorted(runs, key=lambda r: (r.timestamp, r.source)):
        newest[tuple(getattr(run, name) for name in by)] = run
    return sorted(newest.values(), key=lambda r: (r.timestamp, r.source))
