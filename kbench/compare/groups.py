"""Comparison groups within ONE run: each variant's throughput over its group's baseline.

A suite labels its benchmarks ``comparison`` (the group), ``variant`` and
``baseline`` (the variant the others are divided by). The end-of-session
summary and the in-run checks read the same ratios from here.
"""

from __future__ import annotations

import dataclasses

from kbench import stats
from kbench.record import BenchmarkRecord, pairs_across_runs
from kbench.results import Run


def paired(a: BenchmarkRecord, b: BenchmarkRecord) -> bool:
    """Whether two records of ONE run ran pairwise interleaved (the same lockstep group, as
    many rounds each: round i of both in cycle i)."""
    return (a.lockstep is not None and a.lockstep == b.lockstep
            and len(a.samples_per_s) == len(b.samples_per_s))


def paired_across_runs(a: BenchmarkRecord, b: BenchmarkRecord) -> bool:
    """Whether two records of TWO runs ran pairwise interleaved: kbench ab's two sides,
    paired by its lockstep id (kbench.record.ab_lockstep_id). Two benchmark sessions'
    records of one lockstep group carry the same group name, but ran in different
    sessions: never paired."""
    return paired(a, b) and pairs_across_runs(a.lockstep)


def in_run_ratio(numerator: BenchmarkRecord, denominator: BenchmarkRecord
                 ) -> tuple[float, float, float]:
    """(ratio, CI low, CI high) of two benchmarks of one run.

    Paired records (:func:`paired`): the geometric mean of per-cycle ratios with
    a bootstrap over cycles, so drift common to a cycle cancels. Otherwise the
    ratio of medians, each side resampled on its own.
    """
    if paired(numerator, denominator):
        return stats.paired_ratio_ci(numerator.samples_per_s, denominator.samples_per_s)
    return stats.ratio_ci(numerator.samples_per_s, denominator.samples_per_s)


@dataclasses.dataclass(frozen=True)
class Member:
    """One benchmark of a group; ``ratio`` is (point, low, high) over the group's
    baseline, None for the baseline itself or when the group has none."""

    record: BenchmarkRecord
    ratio: tuple[float, float, float] | None

    @property
    def variant(self) -> str:
        return self.record.variant or self.record.workflow or self.record.key or "?"


@dataclasses.dataclass(frozen=True)
class Group:
    """A comparison group of one run, members in the run's order; ``baseline`` is the
    member the others are divided by (None when no member is labelled the baseline)."""

    name: str
    members: tuple[Member, ...]
    baseline: BenchmarkRecord | None


def _group(name: str, records: list[BenchmarkRecord]) -> Group:
    base = next((r for r in records if r.variant is not None and r.variant == r.baseline), None)
    members = tuple(Member(r, None if base is None or r is base else in_run_ratio(r, base))
                    for r in records)
    return Group(name, members, base)


def run_groups(run: Run) -> list[Group]:
    """The run's comparison groups, in the order their first benchmark ran."""
    by_name: dict[str, list[BenchmarkRecord]] = {}
    for record in run.results.values():
        if record.comparison is not None:
            by_name.setdefault(record.comparison, []).append(record)
    return [_group(name, records) for name, records in by_name.items()]
