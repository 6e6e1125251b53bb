"""Are the ratios within ONE run sane? In-run ratio checks, declared as data.

e.g. tf.function at least 3x its eager twin. No baseline run is needed, so a
broken variant (tf.function silently eager, XLA silently not compiling) fails
on the run that shows it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from typing import Any

from kbench import _format, _validate
from kbench.compare.groups import in_run_ratio
from kbench.compare.matrix import ComparisonError
from kbench.record import BenchmarkRecord
from kbench.results import Run
from kbench.workflows import WorkflowSpec

# Fields are BenchmarkRecord attributes, dotted into the spec ("spec.loop"); a
# str value is an fnmatch pattern matched against str(field value), any other
# value must be equal.
Selector = tuple[tuple[str, Any], ...]

CHECK_STATUSES = ("passed", "failed", "not-applicable")


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(BenchmarkRecord)) | {"workflow"}
_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(WorkflowSpec)) | {"name"}


def _check_path(path, what: str, check: str) -> None:
    parts = path.split(".") if isinstance(path, str) else [None]
    known = parts[0] in _RECORD_FIELDS and (
        len(parts) == 1 or (parts[0] == "spec" and len(parts) == 2 and parts[1] in _SPEC_FIELDS))
    if not known:
        raise ComparisonError(f"check {check!r}: {what} {path!r} is not a BenchmarkRecord field "
                              f"(one of {sorted(_RECORD_FIELDS)}, or spec.<WorkflowSpec field>)")


def _check_selector(name: str, selector, check: str) -> None:
    if not isinstance(selector, tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 for p in selector):
        raise ComparisonError(f"check {check!r}: {name} must be a tuple of (field, value) "
                              f"pairs, got {selector!r}")
    for path, _ in selector:
        _check_path(path, f"{name} field", check)


def _check_bound(name: str, value, check: str) -> None:
    if value is not None:
        _validate.check_number(name, value, low=0, low_open=True, error=ComparisonError,
                               where=f"check {check!r}")


@dataclasses.dataclass(frozen=True)
class RatioCheck:
    """A bound on the ratio of two benchmarks of ONE run (numerator / denominator samples/s).

    Benchmarks matching ``where`` are grouped by their ``pair_by`` fields; in
    each group the one matching ``numerator`` is divided by the one matching
    ``denominator``. So one check covers every device, batch size and loop the
    run has. Validated on construction.

    Attributes:
        name: short id, e.g. ``"function-vs-eager-mlp"``.
        where, numerator, denominator: selectors (see ``Selector``).
        pair_by: record fields that must be equal within a pair.
        min_ratio, max_ratio: the bounds (at least one).
        why: one line for reports: what a failure means.
    """

    name: str
    where: Selector
    numerator: Selector
    denominator: Selector
    pair_by: tuple[str, ...]
    min_ratio: float | None = None
    max_ratio: float | None = None
    why: str = ""

    def __post_init__(self) -> None:
        _validate.check_str("a RatioCheck's name", self.name, error=ComparisonError)
        for field in ("where", "numerator", "denominator"):
            _check_selector(field, getattr(self, field), self.name)
        if not isinstance(self.pair_by, tuple):
            raise ComparisonError(f"check {self.name!r}: pair_by must be a tuple of field "
                                  f"names, got {self.pair_by!r}")
        for path in self.pair_by:
            _check_path(path, "pair_by field", self.name)
        _check_bound("min_ratio", self.min_ratio, self.name)
        _check_bound("max_ratio", self.max_ratio, self.name)
        if self.min_ratio is None and self.max_ratio is None:
            raise ComparisonError(f"check {self.name!r} needs min_ratio or max_ratio")
        if None not in (self.min_ratio, self.max_ratio) and self.min_ratio > self.max_ratio:
            raise ComparisonError(f"check {self.name!r}: min_ratio {self.min_ratio!r} > "
                                  f"max_ratio {self.max_ratio!r}")

    def bound_text(self) -> str:
        parts = ([f">= {self.min_ratio:g}x"] if self.min_ratio is not None else []) \
            + ([f"<= {self.max_ratio:g}x"] if self.max_ratio is not None else [])
        return " and ".join(parts)


# The execution suite (benchmarks/test_execution.py) labels its benchmarks
# comparison="execution <family> <loop> b<batch> <device>", variant=<execution>,
# with the WorkflowSpec as ``spec``. Other suites reuse the same workflows
# (e.g. the function twin appears in the loop, precision and prefetch suites),
# so the suite's comparison label is part of every selector.
_EXECUTION_SUITE = ("comparison", "execution *")
_EXECUTION_TWINS = ("device", "batch_size", "spec.loop", "spec.style", "spec.precision")

# Bounds chosen from the default-profile runs 0002 and 0012 and the smoke run
# 0003 in reports/runs/pytest-benchmark/Linux-CPython-3.11-64bit/ (TF 2.21,
# Keras 3.15, cpu-amd-epyc-2c), ratio of medians [95% bootstrap CI].
RATIO_CHECKS: tuple[RatioCheck, ...] = (
    # MLP function/eager measured: fit 11.14x [10.33, 12.09] (0002), 14.14x (0003),
    # 16.04x [13.92, 16.64] (0012); custom 11.65x [10.51, 12.36] (0002), 18.01x
    # (0003), 17.27x [16.72, 17.66] (0012). A tf.function that silently runs
    # eagerly (run_functions_eagerly left on, a retrace every step) lands near
    # 1x; 3x (the bar) sits between that and the lowest CI low (10.3)
    # with a 3.4x margin on this machine.
    RatioCheck(
        name="function-vs-eager-mlp",
        where=(_EXECUTION_SUITE, ("spec.family", "mlp")),
        numerator=(("spec.execution", "function"),),
        denominator=(("spec.execution", "eager"),),
        pair_by=_EXECUTION_TWINS,
        min_ratio=3.0,
        why="tf.function must be >= 3x its eager twin on the MLP: below, the traced step "
            "is not what runs (eager fallback or a retrace per step)",
    ),
    # CNN function/eager is lower because convolutions dominate the step:
    # custom 2.89x [2.82, 3.10] (0002) and 4.55x [4.24, 5.50] (0012); fit
    # 5.83x [5.69, 6.02] (0002), 4.92x [4.50, 5.22] (0012). 3x would sit inside
    # 0002's CI, so the bar is 2x: 1.4x below the lowest CI low (2.82), still
    # far from the ~1x of an eager fallback.
    RatioCheck(
        name="function-vs-eager-cnn",
        where=(_EXECUTION_SUITE, ("spec.family", "cnn")),
        numerator=(("spec.execution", "function"),),
        denominator=(("spec.execution", "eager"),),
        pair_by=_EXECUTION_TWINS,
        min_ratio=2.0,
        why="tf.function must be >= 2x its eager twin on the CNN: below, the traced step "
            "is not what runs (eager fallback or a retrace per step)",
    ),
    # XLA is SLOWER than tf.function on this CPU (XLA's CPU backend skips
    # oneDNN's matmuls; the MLP has little to fuse): MLP xla/function fit 0.44x
    # [0.39, 0.55] (0002), 0.50x [0.48, 0.52] (0003), 0.43x [0.39, 0.52] (0012);
    # custom 0.41x [0.35, 0.50] (0002), 0.44x [0.43, 0.47] (0003), 0.38x [0.37,
    # 0.42] (0012). The floor 0.25x (XLA at most 4x slower) is 1.4x below the
    # lowest CI low (0.35) and catches what would be a bug rather than the
    # known CPU gap, e.g. a recompilation every step (tens of x slower).
    RatioCheck(
        name="xla-vs-function-mlp",
        where=(_EXECUTION_SUITE, ("spec.family", "mlp")),
        numerator=(("spec.execution", "xla"),),
        denominator=(("spec.execution", "function"),),
        pair_by=_EXECUTION_TWINS,
        min_ratio=0.25,
        why="XLA may be slower than tf.function on a CPU, but not by more than 4x on the "
            "MLP: beyond that suspect recompilation per step",
    ),
)

# The harness suite (benchmarks/test_harness.py): kbench's probed rounds vs
# the same fit with only an epoch-boundary gate (a plain model.fit), in
# lockstep. kbench may cost at most this share of throughput (issue 11's bar);
# the check fails only when the whole CI of the overhead is above it, i.e. the
# ratio's CI high is below 1 - 0.03.
HARNESS_OVERHEAD_TARGET = 0.03
HARNESS_CHECK = RatioCheck(
    name="harness-overhead",
    where=(("comparison", "harness *"),),
    numerator=(("variant", "kbench"),),
    denominator=(("variant", "bare fit"),),
    pair_by=("device", "batch_size"),
    min_ratio=1 - HARNESS_OVERHEAD_TARGET,
    why="kbench's per-step probe may cost at most 3% of a plain model.fit's throughput",
)
RATIO_CHECKS = (*RATIO_CHECKS, HARNESS_CHECK)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One pair of one RatioCheck in one run.

    ``status`` is "failed" only when the whole CI of the ratio is beyond the
    bound (ci_high < min_ratio or ci_low > max_ratio): a point estimate beyond
    the bound whose CI still reaches it passes. "not-applicable" when the run
    lacks one side (ratio and CI are then None; ``note`` says what is missing).
    """

    check: RatioCheck
    status: str
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    numerator_key: str | None = None
    denominator_key: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        _validate.check_choice("status", self.status, CHECK_STATUSES, error=ComparisonError)
        measured = (self.ratio, self.ci_low, self.ci_high)
        if (self.status == "not-applicable") != (None in measured):
            raise ComparisonError(f"status {self.status!r} contradicts ratio/CI {measured!r}")

    def __str__(self) -> str:
        if self.ratio is None:
            return f"{self.check.name}: not applicable ({self.note})"
        return (f"{self.check.name}: {self.numerator_key} / {self.denominator_key} = "
                f"{_format.ratio(self.ratio, self.ci_low, self.ci_high)}, "
                f"bound {self.check.bound_text()}: {self.status}")


_ABSENT = object()


def _field(record: BenchmarkRecord, path: str):
    try:
        value = record.field(path)
    except AttributeError:
        return _ABSENT
    return _ABSENT if value is None else value


def _selected(record: BenchmarkRecord, selector: Selector) -> bool:
    for path, wanted in selector:
        value = _field(record, path)
        if value is _ABSENT:
            return False
        if isinstance(wanted, str):
            if not fnmatch.fnmatchcase(str(value), wanted):
                return False
        elif value != wanted:
            return False
    return True


def _one(check: RatioCheck, side: str, keys: list[str]) -> str | None:
    if len(keys) > 1:
        raise ComparisonError(f"check {check.name!r}: its {side} selector matches several "
                              f"benchmarks of one pair {keys}; add a field to where= or pair_by=")
    return keys[0] if keys else None


def check_pair(check: RatioCheck, numerator: BenchmarkRecord, denominator: BenchmarkRecord
               ) -> CheckResult:
    """``check``'s verdict on one pair of records (paired rounds where they ran in lockstep)."""
    ratio, low, high = in_run_ratio(numerator, denominator)
    failed = (check.min_ratio is not None and high < check.min_ratio) \
        or (check.max_ratio is not None and low > check.max_ratio)
    return CheckResult(check, "failed" if failed else "passed", ratio, low, high,
                       numerator.key or numerator.variant, denominator.key or denominator.variant)


def _evaluate(check: RatioCheck, run: Run, num: str, den: str) -> CheckResult:
    return check_pair(check, run.results[num], run.results[den])


def _run_check(check: RatioCheck, run: Run) -> list[CheckResult]:
    groups: dict[tuple, dict[str, list[str]]] = {}
    for key, result in run.results.items():
        if not _selected(result, check.where):
            continue
        pair = tuple(repr(_field(result, f)) for f in check.pair_by)
        sides = groups.setdefault(pair, {"numerator": [], "denominator": []})
        for side in sides:
            if _selected(result, getattr(check, side)):
                sides[side].append(key)
    out = []
    for sides in groups.values():
        num = _one(check, "numerator", sides["numerator"])
        den = _one(check, "denominator", sides["denominator"])
        if num is not None and den is not None:
            out.append(_evaluate(check, run, num, den))
        elif num is not None or den is not None:
            present, absent = ("numerator", "denominator") if num else ("denominator", "numerator")
            out.append(CheckResult(check, "not-applicable", None, None, None, num, den,
                                   note=f"{num or den!r} ({present}) has no {absent} twin"))
    if not out:
        out.append(CheckResult(check, "not-applicable", None, None, None,
                               note="no benchmark of this run matches it"))
    return out


def run_checks(run: Run, checks: Sequence[RatioCheck] = RATIO_CHECKS) -> list[CheckResult]:
    """Evaluate in-run ratio checks on one run; at least one result per check."""
    if not isinstance(run, Run):
        raise ComparisonError(f"run must be a kbench.results.Run, got {run!r:.80}")
    for check in checks:
        if not isinstance(check, RatioCheck):
            raise ComparisonError(f"checks must be RatioCheck records, got {check!r:.80}")
    return [result for check in checks for result in _run_check(check, run)]
