"""Comparisons and CI gating over stored benchmark runs.

Four questions, one module each:

- :mod:`~kbench.compare.matrix` — how do these runs compare?
  :func:`compare_runs` builds a benchmarks x runs :class:`Matrix` against a
  baseline run (ratios with CIs, asv's verdicts, geometric means,
  fingerprint differences, warnings).
- :mod:`~kbench.compare.gating` and :mod:`~kbench.compare.policy` — did the
  candidate regress? :func:`gate` fails when a benchmark is significantly
  slower AND slower than its allowed slowdown (a default, or a per-benchmark
  :class:`Policy` read by :func:`load_policy`).
- :mod:`~kbench.compare.groups` — within one run, each variant over its
  group's baseline (:func:`run_groups`; the end-of-session summary reads it).
- :mod:`~kbench.compare.checks` — are the ratios within one run sane?
  :data:`RATIO_CHECKS`, evaluated by :func:`run_checks`.

Nothing here measures or formats a report: results come in as
:class:`kbench.results.Run` records of :class:`kbench.record.BenchmarkRecord`,
answers go out as frozen records. Every bad input raises
:class:`ComparisonError` (a ValueError) with the value it got; the CLI turns it
into exit code 2.
"""

from kbench.compare.checks import (CHECK_STATUSES, HARNESS_CHECK, HARNESS_OVERHEAD_TARGET,
                                   RATIO_CHECKS, CheckResult,
                                   RatioCheck, Selector, check_pair, run_checks)
from kbench.compare.gating import (DEFAULT_MAX_SLOWDOWN, DEFAULT_MAX_STARTUP_FACTOR,
                                   EXIT_BAD_INPUT, EXIT_PASS, EXIT_REGRESSION, GateFailure,
                                   GateResult, StartupFailure, gate)
from kbench.compare.groups import (Group, Member, in_run_ratio, paired, paired_across_runs,
                                   run_groups)
from kbench.compare.matrix import Cell, ComparisonError, Matrix, compare_runs
from kbench.compare.policy import (POLICY_SCHEMA_VERSION, SUPPORTED_POLICY_SCHEMA_VERSIONS,
                                   Policy, PolicyError, PolicyRule, load_policy,
                                   policy_from_mapping)

__all__ = [
    "CHECK_STATUSES", "DEFAULT_MAX_SLOWDOWN", "DEFAULT_MAX_STARTUP_FACTOR", "EXIT_BAD_INPUT",
    "EXIT_PASS", "EXIT_REGRESSION",
    "POLICY_SCHEMA_VERSION", "RATIO_CHECKS", "SUPPORTED_POLICY_SCHEMA_VERSIONS", "Cell",
    "CheckResult", "ComparisonError", "GateFailure", "GateResult", "StartupFailure", "Group",
    "Matrix", "Member",
    "Policy", "PolicyError", "PolicyRule", "RatioCheck", "Selector", "compare_runs", "gate",
    "HARNESS_CHECK", "HARNESS_OVERHEAD_TARGET", "check_pair", "in_run_ratio", "paired", "paired_across_runs",
    "load_policy", "policy_from_mapping", "run_checks", "run_groups",
]
