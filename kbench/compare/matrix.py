"""How do these runs compare? A matrix of benchmarks x runs against a baseline run.

Per cell the median samples/s with a bootstrap CI and, against the baseline
column, the ratio with its CI and a verdict only the samples' design can
support (:func:`design_of`, :func:`compare_records`):

- several sessions a side, pooled one median per session (``kbench ab
  --sessions``): asv's rule on them, significant only when the Mann-Whitney
  p < alpha AND the ratio is beyond a minimum factor
  (:func:`kbench.stats.compare_samples`);
- rounds run pair by pair in lockstep (``kbench ab``'s stored runs): the
  same rule on the paired estimate, whose standard error counts the workers'
  process offsets (:func:`kbench.sequential.lane_estimate`);
- the rounds of one session a side: ``untested``. They are not independent
  samples of a side: two sessions of the same code differ by more than their
  rounds say (kbench's A/As: 26 of 100 single-session A/A comparisons failed
  a Mann-Whitney gate on an earlier VM; on this one a worker process alone
  carries a lasting offset of 2.0% sd, DEFAULT_PROCESS_SD), so the ratio is
  shown with that note and called nothing.

Also a geometric mean of ratios per run, fingerprint differences and
warnings. Nothing here measures or formats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import math

from scipy import stats as _scipy_stats

from kbench import _format, _validate, sequential, stats
from kbench import fingerprint as kfingerprint
from kbench.compare.groups import paired_across_runs
from kbench.record import BenchmarkRecord
from kbench.results import LISTED_KEYS, Run, check_same_benchmarks, listing, run_name

class ComparisonError(ValueError):
    """Runs, policies or checks that cannot be compared; the message says which and why."""



def check_alpha(alpha) -> float:
    return _validate.check_fraction("alpha", alpha, error=ComparisonError)


def check_min_factor(min_factor) -> float:
    return _validate.check_number("min_factor", min_factor, low=1, error=ComparisonError)



# --------------------------------------------------------------------------- matrix


@dataclasses.dataclass(frozen=True)
class Cell:
    """One benchmark in one run: its throughput summary and, unless it is the
    baseline column, its comparison with the baseline (candidate / baseline)."""

    key: str
    run_index: int
    summary: stats.Summary
    comparison: stats.Comparison | None  # None in the baseline column

    def __post_init__(self) -> None:
        if not isinstance(self.summary, stats.Summary):
            raise ComparisonError(f"Cell.summary must be a stats.Summary, got {self.summary!r:.80}")
        if self.comparison is not None and not isinstance(self.comparison, stats.Comparison):
            raise ComparisonError(
                f"Cell.comparison must be a stats.Comparison or None, got {self.comparison!r:.80}")


@dataclasses.dataclass(frozen=True)
class Matrix:
    """Benchmarks x runs, compared with the ``baseline`` column. Validated on construction.

    Attributes:
        runs: the compared runs, in the caller's order.
        baseline: index in ``runs`` of the baseline column.
        keys: the benchmarks (the baseline run's order).
        cells: Cell by ``(key, run_index)``, read-only.
        geomean: per run, the geometric mean over benchmarks of its ratio to the
            baseline (None for the baseline itself).
        fingerprint_diffs: per run, ``kbench.fingerprint.diff(baseline, run)``
            (empty for the baseline itself).
        warnings: why some answers are weaker than they look (too few rounds,
            different machines or profiles); never printed here.
        alpha, min_factor: the significance rule the verdicts used.
    """

    runs: tuple[Run, ...]
    baseline: int
    keys: tuple[str, ...]
    cells: Mapping[tuple[str, int], Cell] = dataclasses.field(repr=False)
    geomean: tuple[float | None, ...]
    fingerprint_diffs: tuple[Mapping[str, tuple], ...] = dataclasses.field(repr=False)
    warnings: tuple[str, ...]
    alpha: float = stats.DEFAULT_ALPHA
    min_factor: float = stats.DEFAULT_MIN_FACTOR

    def __post_init__(self) -> None:
        n = len(self.runs)
        if not 0 <= self.baseline < n:
            raise ComparisonError(f"baseline must index one of the {n} runs, got {self.baseline!r}")
        for name in ("geomean", "fingerprint_diffs"):
            if len(getattr(self, name)) != n:
                raise ComparisonError(
                    f"{name} needs one entry per run ({n}), got {len(getattr(self, name))}")
        missing = [(k, i) for k in self.keys for i in range(n) if (k, i) not in self.cells]
        if missing:
            raise ComparisonError(f"cells missing for (key, run) {missing[:LISTED_KEYS]}")
        object.__setattr__(self, "cells", MappingProxyType(dict(self.cells)))
        object.__setattr__(self, "fingerprint_diffs",
                           tuple(MappingProxyType(dict(d)) for d in self.fingerprint_diffs))

    def startup_factor(self, key: str, run_index: int) -> float | None:
        """``key``'s startup in that run over the baseline run's (:func:`startup_factor`)."""
        return startup_factor(self.runs[self.baseline].results.get(key),
                              self.runs[run_index].results.get(key))

    def counters(self, key: str, run_index: int):
        """The exact counters (kbench.counters.Counters) of ``key`` in that run, or None
        (not in the run, or measured before counters were recorded)."""
        record = self.runs[run_index].results.get(key)
        return record.counters if record is not None else None

    def cell(self, key: str, run_index: int) -> Cell:
        try:
            return self.cells[(key, run_index)]
        except KeyError:
            raise KeyError(f"no cell for benchmark {key!r} in run {run_index!r}: the matrix has "
                           f"{len(self.runs)} runs and keys {listing(self.keys)}") from None


def startup_factor(baseline: BenchmarkRecord | None,
                   candidate: BenchmarkRecord | None) -> float | None:
    """The candidate's startup_s over the baseline's (None where either has none)."""
    if baseline is None or candidate is None or not baseline.startup_s \
            or candidate.startup_s is None:
        return None
    return candidate.startup_s / baseline.startup_s


def _check_runs(runs, baseline) -> tuple[Run, ...]:
    if isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence) or not runs:
        raise ComparisonError(f"runs must be a non-empty sequence of Run, got {runs!r:.80}")
    for i, run in enumerate(runs):
        if not isinstance(run, Run):
            raise ComparisonError(f"runs[{i}] must be a kbench.results.Run, got {run!r:.80}")
    _validate.check_int("baseline", baseline, minimum=0, maximum=len(runs) - 1,
                        error=ComparisonError, where=f"an index into the {len(runs)} runs")
    for i, run in enumerate(runs):
        invalid = [f"{key!r}: {record.invalid}" for key, record in run.results.items()
                   if record.invalid]
        if invalid:
            raise ComparisonError(
                f"{run_name(i, run)} holds {len(invalid)} invalid benchmark(s), which cannot be "
                f"a baseline or a candidate: {'; '.join(invalid[:LISTED_KEYS])}"
                + (f"; ... and {len(invalid) - LISTED_KEYS} more" if len(invalid) > LISTED_KEYS
                   else ""))
    if not runs[baseline].results:
        raise ComparisonError(
            f"nothing to compare: {run_name(baseline, runs[baseline])} has no kbench benchmarks")
    return tuple(runs)


def _check_batch_sizes(runs: tuple[Run, ...], keys: tuple[str, ...]) -> None:
    problems = []
    for key in keys:
        sizes = [run.results[key].batch_size for run in runs]
        if len(set(sizes)) > 1:
            where = ", ".join(f"{size!r} in run {i}" for i, size in enumerate(sizes))
            problems.append(f"{key!r}: batch_size {where}")
    if problems:
        raise ComparisonError(
            "cannot compare benchmarks run at different batch sizes (samples/s are not "
            f"comparable): {'; '.join(problems[:LISTED_KEYS])}"
            + (f"; ... and {len(problems) - LISTED_KEYS} more" if len(problems) > LISTED_KEYS
               else ""))


def _round_warnings(runs: tuple[Run, ...], keys: tuple[str, ...], alpha: float,
                    cells: Mapping) -> list[str]:
    """Benchmarks whose sessions are too few for the Mann-Whitney test to ever decide."""
    if len(runs) < 2:
        return []
    need = stats.min_samples_for(alpha)
    tested = {key for (key, _), cell in cells.items()
              if cell.comparison is not None and cell.comparison.design == "sessions"}
    warnings = []
    for i, run in enumerate(runs):
        short = [k for k in keys if k in tested and len(run.results[k].samples_per_s) < need]
        if short:
            fewest = min(len(run.results[k].samples_per_s) for k in short)
            warnings.append(
                f"{run_name(i, run)}: {len(short)} of {len(keys)} benchmarks have fewer than "
                f"{need} sessions (fewest {fewest}), so at alpha={alpha:g} no difference involving "
                f"them can be significant: {listing(short)}")
    return warnings


def _setting_warnings(runs: tuple[Run, ...], baseline: int) -> list[str]:
    """Differences that make ratios mean more than a code change: machine, profile."""
    warnings = []
    base = runs[baseline]
    for i, run in enumerate(runs):
        if run.machine_key != base.machine_key:
            warnings.append(
                f"{run_name(i, run)} ran on {run.machine_key}, the baseline on "
                f"{base.machine_key}: its ratios mix machine and code differences")
        profiles = {r.profile for r in run.results.values()}
        base_profiles = {r.profile for r in base.results.values()}
        if profiles != base_profiles:
            warnings.append(
                f"{run_name(i, run)} used profile(s) {sorted(map(str, profiles))}, the baseline "
                f"{sorted(map(str, base_profiles))}: round counts and lengths differ")
    return warnings


# Sessions a side a pooled record needs before its session medians are tested
# (fewer: the single-session design).
MIN_SESSIONS = 2


def _sessions(record: BenchmarkRecord) -> int:
    """How many sessions' medians a record's samples are (0: its own rounds)."""
    pooling = record.pooling
    return len(pooling.sources) if pooling is not None and pooling.unit == "session" else 0


def design_of(baseline: BenchmarkRecord, candidate: BenchmarkRecord) -> str:
    """Which of stats.DESIGNS two records' samples follow (see the module docstring)."""
    if paired_across_runs(baseline, candidate):
        return "paired"
    if min(_sessions(baseline), _sessions(candidate)) >= MIN_SESSIONS:
        return "sessions"
    return "single"


def compare_records(baseline: BenchmarkRecord, candidate: BenchmarkRecord, *,
                    alpha: float = stats.DEFAULT_ALPHA,
                    min_factor: float = stats.DEFAULT_MIN_FACTOR) -> stats.Comparison:
    """Candidate vs baseline throughput, tested only as far as the design supports."""
    design = design_of(baseline, candidate)
    if design == "sessions":
        return stats.compare_samples(baseline.samples_per_s, candidate.samples_per_s,
                                     alpha=alpha, min_factor=min_factor)
    if design == "paired":
        logs = [math.log(c / b) for b, c in zip(baseline.samples_per_s,
                                                candidate.samples_per_s)]
        lanes = int(candidate.extras.get("workers", 1))
        mean, se = sequential.lane_estimate(logs, lanes, sequential.DEFAULT_PROCESS_SD)
        z = float(_scipy_stats.norm.ppf(0.5 + stats.DEFAULT_CONFIDENCE / 2))
        p_value = float(2 * _scipy_stats.norm.sf(abs(mean) / se)) if se > 0 else 0.0
        ratio = math.exp(mean)
        verdict = stats.verdict_of(ratio, p_value, alpha, min_factor)
        return stats.Comparison(ratio=ratio, ci_low=math.exp(mean - z * se),
                                ci_high=math.exp(mean + z * se), p_value=p_value,
                                significant=verdict != "same", verdict=verdict,
                                alpha=float(alpha), min_factor=float(min_factor),
                                design=design)
    ratio, low, high = stats.ratio_ci(candidate.samples_per_s, baseline.samples_per_s)
    return stats.Comparison(ratio=ratio, ci_low=low, ci_high=high, p_value=1.0,
                            significant=False, verdict=stats.UNTESTED, alpha=float(alpha),
                            min_factor=float(min_factor), design=design)


def single_session_note(count: int, total: int) -> str:
    """Why ``count`` of ``total`` benchmarks are untested (for the matrix's warnings)."""
    return (f"{count} of {total} benchmark(s) compare one session a side: a ratio of two "
            "sessions includes their drift, which their rounds do not show (on kbench's 2-core "
            "VM a Mann-Whitney test on the rounds flagged 9 of 20 single-session A/As as "
            "slower; a worker process alone carries a lasting offset of "
            f"{_format.share(sequential.DEFAULT_PROCESS_SD, 1)} sd), so none is called "
            "significant (untested; their CIs are of the rounds alone). To test a change, "
            "run `kbench ab` (lockstep) or give several runs a side (one median per "
            "session)")


def compare_runs(
    runs: Sequence[Run],
    baseline: int = 0,
    *,
    alpha: float = stats.DEFAULT_ALPHA,
    min_factor: float = stats.DEFAULT_MIN_FACTOR,
) -> Matrix:
    """The benchmarks x runs matrix of ``runs`` against ``runs[baseline]``.

    Refuses (ComparisonError) runs whose benchmark sets or batch sizes differ,
    naming the keys. Verdicts per cell follow :func:`compare_records`.
    """
    runs = _check_runs(runs, baseline)
    check_alpha(alpha)
    check_min_factor(min_factor)
    keys = check_same_benchmarks(runs, baseline, error=ComparisonError)
    _check_batch_sizes(runs, keys)
    cells: dict[tuple[str, int], Cell] = {}
    for i, run in enumerate(runs):
        for key in keys:
            samples = run.results[key].samples_per_s
            comparison = None
            if i != baseline:
                comparison = compare_records(runs[baseline].results[key], run.results[key],
                                             alpha=alpha, min_factor=min_factor)
            cells[(key, i)] = Cell(key, i, stats.summarize(samples), comparison)
    geomean = tuple(
        None if i == baseline
        else stats.geometric_mean([cells[(k, i)].comparison.ratio for k in keys])
        for i in range(len(runs)))
    diffs = tuple(kfingerprint.diff(runs[baseline].fingerprint, run.fingerprint) for run in runs)
    untested = [c for c in cells.values()
                if c.comparison is not None and c.comparison.verdict == stats.UNTESTED]
    warnings = (_round_warnings(runs, keys, alpha, cells) + _setting_warnings(runs, baseline)
                + ([single_session_note(len({c.key for c in untested}), len(keys))]
                   if untested else []))
    return Matrix(runs=runs, baseline=baseline, keys=keys, cells=cells, geomean=geomean,
                  fingerprint_diffs=diffs, warnings=tuple(warnings), alpha=float(alpha),
                  min_factor=float(min_factor))
