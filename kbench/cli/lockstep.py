"""``kbench ab`` in lockstep (its default) and ``--calibrate``: the two sides' workers run
round for round, a sequential test decides each workflow (kbench.lockstep_ab)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import time
from pathlib import Path

import typer

from kbench import _format, lockstep_ab, profiles, remote, sequential
from kbench import results as kresults
from kbench.cli._common import CliError, bad_input, console, say
from kbench.cli._progress import progress_bar
from kbench.workflows import WorkflowError, get_workflow

# What `kbench ab` A/Bs when no -w is given: the MLP under fit and tf.function,
# the project's fastest-deciding workflow (per-pair spread 0.15 here).
DEFAULT_WORKFLOWS = ("mlp-sequential-fit-function-fp32",)
# The per-workflow budget of pairs when --budget is not given, as typed: on this
# 2-core VM 2 minutes held ~450 MLP pairs (4 workers a side), whose noise then
# adds less to the CI than the workers' process offsets do (pair term sd 0.7%,
# process term 1.4%), so a longer budget buys little.
DEFAULT_BUDGET = "2m"
# The default allowed slowdown, as typed: a "same" needs the whole CI within
# +-max slowdown, and with 4 workers a side the last look's CI here is about
# +-4% wide (reports/README.md), so at 3% an A/A can only end inconclusive.
DEFAULT_MAX_SLOWDOWN = "5%"
# The profile whose round settings the workers use (0.1 s rounds, lead, warm-up).
WORKER_PROFILE = "default"

_DURATION = re.compile(r"^\s*(?P<number>[0-9]*\.?[0-9]+)\s*(?P<unit>s|m|min|h)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``"90s"``, ``"3m"``, ``"1.5h"`` or a plain number of seconds.

    Raises:
        typer.BadParameter: quoting ``text`` for anything else, or zero.
    """
    match = _DURATION.match(str(text))
    seconds = float(match["number"]) * _UNIT_S[match["unit"]] if match else 0.0
    if seconds <= 0:
        raise typer.BadParameter(f"expected a duration like '90s', '3m' or '1h' (above 0), "
                                 f"got {text!r}", param_hint=f"'{option}'")
    return seconds


def _specs(names: list[str] | None):
    specs = []
    for name in names or DEFAULT_WORKFLOWS:
        with bad_input(WorkflowError):
            specs.append(get_workflow(name))
    return specs


def _ratio(result) -> str:
    if math.isnan(result.ratio):  # no look had pairs enough
        return "no ratio yet"
    level = _format.share(result.confidence, 1)
    return (f"{result.ratio:.3f}x [{result.low:.3f}, {result.high:.3f}] ({level} CI, "
            f"{len(result.looks)} look(s))")


def _result_line(result) -> str:
    idle = ", ".join(f"{side} {share:.2f}" for side, share in result.idle_cpu_share.items()
                     if share is not None)
    return (f"{result.workflow}: {result.verdict.upper()}  candidate/baseline "
            f"{_ratio(result)}, {result.pairs} pairs of {result.workers} worker(s) a side in "
            f"{result.pairs_s:.0f} s (startups: precursor {result.precursor_s:.0f} s, "
            f"baseline {result.startup_s['baseline']:.0f} s, candidate "
            f"{result.startup_s['candidate']:.0f} s; idle workers' CPU {idle or 'unknown'} "
            f"cores; --seed {result.seed} repeats its orders)")


def _check_sides(run, *sides) -> None:
    for side in {s.python: s for s in sides}.values():
        with bad_input(lockstep_ab.ABError):
            lockstep_ab.check_worker_python(side, run)


def run_lockstep(baseline_python: Path, candidate_python: Path, *, workflows: list[str] | None,
                 max_slowdown: float, budget_s: float, min_pairs: int, looks: int,
                 alpha: float, workers: int, process_sd: float, inject: float, json_path: Path | None,
                 inconclusive_fails: bool, seed: int | None = None, store: Path | None = None,
                 run=subprocess.run,
                 open_worker=remote.RemoteRun, clock=time.perf_counter) -> int:
    """``kbench ab``'s lockstep mode; returns the exit code. ``run`` runs the interpreter
    check, ``open_worker`` makes a side's worker, ``clock`` times the pairs (tests pass
    fakes); ``seed`` seeds each workflow's start and pair orders (None: fresh ones)."""
    with bad_input(sequential.SequentialError, lockstep_ab.ABError):
        design = sequential.Design(max_slowdown, alpha=alpha, looks=looks, min_pairs=min_pairs,
                                   workers=workers, process_sd=process_sd)
        baseline = lockstep_ab.Side(lockstep_ab.BASELINE, str(baseline_python))
        candidate = lockstep_ab.Side(lockstep_ab.CANDIDATE, str(candidate_python), inject)
    specs = _specs(workflows)
    _check_sides(run, baseline, candidate)
    profile = profiles.get_profile(WORKER_PROFILE)
    out = console()
    say(out, f"lockstep A/B: {len(specs)} workflow(s), {budget_s:.0f} s of pairs each, "
             f"max slowdown {_format.share(max_slowdown)}, up to {looks} looks at "
             f"{_format.share(design.look_confidence, 1)} CIs (alpha "
             f"{_format.share(alpha)} over all looks)"
             + (f"; candidate slowed by {_format.share(inject)} (injected)" if inject else ""))
    results = []
    for spec in specs:
        results.append(_run_one(out, spec, baseline, candidate, profile, design, budget_s,
                                open_worker, clock, seed))
        say(out, _result_line(results[-1]))
    overall = lockstep_ab.overall_verdict([r.verdict for r in results])
    say(out, f"overall: {overall.upper()}")
    with bad_input(kresults.ResultsError):
        stored = lockstep_ab.store_results(results, kresults.store_dir(store))
    for side, path in stored.items():
        say(out, f"{side} run (its rounds, paired with the other's): {path}")
    if json_path is not None:
        document = {"mode": "lockstep", "overall": overall, "max_slowdown": max_slowdown,
                    "budget_s": budget_s, "alpha": alpha, "looks": looks,
                    "min_pairs": min_pairs, "baseline_python": str(baseline_python),
                    "candidate_python": str(candidate_python),
                    "workflows": [r.to_dict() for r in results]}
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        say(out, f"wrote {json_path}")
    return lockstep_ab.exit_code(overall, inconclusive_fails=inconclusive_fails)


def _run_one(out, spec, baseline, candidate, profile, design, budget_s, open_worker, clock,
             seed):
    with progress_bar(out, "ratio") as progress:
        task = progress.add_task(f"{spec.name}: starting both sides", total=None, ratio="")

        def on_pair(pairs, test, elapsed):
            last = test.looks[-1] if test.looks else None
            shown = (f"{last.ratio:.3f}x [{last.low:.3f}, {last.high:.3f}] at look "
                     f"{len(test.looks)}" if last and not math.isnan(last.ratio) else "")
            progress.update(task, completed=pairs, ratio=shown,
                            description=f"{spec.name}: {elapsed:.0f}/{budget_s:.0f} s")

        try:
            return lockstep_ab.run_workflow(spec, baseline, candidate, profile, design,
                                            budget_s, seed=seed, on_pair=on_pair,
                                            open_worker=open_worker, clock=clock)
        except lockstep_ab.ABError as err:
            progress.stop()
            raise CliError(str(err)) from None


def calibrate(baseline_python: Path, *, workflows: list[str] | None, max_slowdown: float,
              budget_s: float, min_pairs: int, looks: int, alpha: float, workers: int,
              process_sd: float, seed: int | None = None, json_path: Path | None = None,
              run=subprocess.run, open_worker=remote.RemoteRun,
              clock=time.perf_counter) -> int:
    """``kbench ab --calibrate``: an A/A of the baseline against itself, the minimum
    detectable slowdown it implies, and an injected slowdown of that size to check it;
    ``json_path`` receives all three per workflow."""
    with bad_input(sequential.SequentialError, lockstep_ab.ABError):
        design = sequential.Design(max_slowdown, alpha=alpha, looks=looks, min_pairs=min_pairs,
                                   workers=workers, process_sd=process_sd)
        a_side = lockstep_ab.Side(lockstep_ab.BASELINE, str(baseline_python))
        b_side = lockstep_ab.Side(lockstep_ab.CANDIDATE, str(baseline_python))
    profile = profiles.get_profile(WORKER_PROFILE)
    out = console()
    specs = _specs(workflows)
    _check_sides(run, a_side)
    calibrated = []
    for spec in specs:
        # The A/A runs its whole budget (a tiny threshold never decides "same" early),
        # so the spread and the pairs per second are those of a full budget.
        a_a_design = dataclasses.replace(design, max_slowdown=1e-9, looks=1)
        a_a = _run_one(out, spec, a_side, b_side, profile, a_a_design, budget_s, open_worker,
                       clock, seed)
        estimate = lockstep_ab.power(a_a.log_ratios, a_a.pairs_s, budget_s, design)
        measured = ("not measurable with one worker a side" if estimate.measured_process_sd
                    is None else f"{_format.share(estimate.measured_process_sd, 1)} measured")
        say(out, f"{spec.name}: A/A {a_a.ratio:.3f}x [{a_a.low:.3f}, {a_a.high:.3f}] over "
                 f"{a_a.pairs} pairs; per-pair spread {estimate.pair_sd:.3f}, "
                 f"{estimate.pairs_per_s:.1f} pairs/s; a worker process's speed offset: "
                 f"{measured} (the CI allows for at least "
                 f"{_format.share(design.process_sd, 1)}: --process-sd)")
        say(out, f"{spec.name}: with {budget_s:.0f} s and a {_format.share(max_slowdown)} "
                 f"threshold the gate detects a slowdown of "
                 f"{_format.share(estimate.min_detectable)} or more with 95% probability")
        injected = lockstep_ab.Side(lockstep_ab.CANDIDATE, str(baseline_python),
                                    round(estimate.min_detectable, 4))
        check = _run_one(out, spec, a_side, injected, profile, design, budget_s, open_worker,
                         clock, None if seed is None else seed + 1)
        achieved = 1 - check.ratio
        say(out, f"{spec.name}: injected {_format.share(injected.slowdown)}: measured "
                 f"{_format.share(achieved)} slower ({_ratio(check)}), verdict "
                 f"{check.verdict.upper()} after {check.pairs} pairs in {check.pairs_s:.0f} s "
                 f"(orders' seed {check.seed})")
        calibrated.append({"workflow": spec.name, "a_a": a_a.to_dict(),
                           "power": dataclasses.asdict(estimate),
                           "injected": check.to_dict(), "achieved_slowdown": achieved})
    if json_path is not None:
        document = {"mode": "calibrate", "max_slowdown": max_slowdown, "budget_s": budget_s,
                    "alpha": alpha, "looks": looks, "min_pairs": min_pairs,
                    "baseline_python": str(baseline_python), "workflows": calibrated}
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        say(out, f"wrote {json_path}")
    return 0
