"""``kbench bench`` and ``ab``: run the benchmark suite once, or A/B two interpreters
(in lockstep, kbench.cli.lockstep; or session by session, ``--sessions``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from kbench import _validate, ab, lockstep_ab, profiles, remote, results, sequential, stats
from kbench.cli import lockstep
from kbench.cli._common import (EXIT_REGRESSION, CliError, bad_input, check_option, console, gate,
                                load_policy, open_fraction, parse_fraction, positive_int, runner,
                                say)
from kbench.cli._options import (DEFAULT_MAX_SLOWDOWN, KeywordOption,
                                 ProfileOption, RootOption, StoreOption, TimeoutOption)
from kbench.cli._progress import progress_bar
from kbench.cli._tables import print_gate


def _check_profile(name: str | None) -> str:
    """The benchmark profile to use (KBENCH_PROFILE or the default when ``name`` is None)."""
    name = name or os.environ.get(profiles.PROFILE_ENV) or profiles.DEFAULT_PROFILE
    return check_option("--profile", _validate.check_choice, name, profiles.PROFILES)


def _check_root(root: Path) -> None:
    if not (root / ab.BENCHMARK_DIR).is_dir():
        raise CliError(f"no {ab.BENCHMARK_DIR}/ folder in {str(root)!r}: run from the kbench "
                       "project folder or pass --root")


def _suite_failed(command: str, err: ab.SuiteError) -> typer.Exit:
    """Say on stderr why the suite failed (with its output's tail, if any): exit 1."""
    out = console(stderr=True)
    if err.output_tail.strip():
        say(out, err.output_tail)
    say(out, f"kbench {command}: {err}", style="red")
    return typer.Exit(EXIT_REGRESSION)


def bench(
    ctx: typer.Context,
    profile: ProfileOption = None,
    store: StoreOption = None,
    keyword: KeywordOption = None,
    timeout: TimeoutOption = ab.DEFAULT_INVOCATION_TIMEOUT_S,
    root: RootOption = Path("."),
) -> None:
    """Run the benchmark suite once and say where its run was stored.

    Runs ``python -m pytest benchmarks --benchmark-only --kbench-profile P
    --kbench-store DIR [-k EXPR]`` in ``--root``; exit 1 if it fails.
    """
    profile = _check_profile(profile)
    _check_root(root)
    try:
        path = ab.run_suite(sys.executable, profile=profile,
                            store=results.store_dir(store, root=root),
                            keyword=keyword, cwd=root, timeout=timeout, runner=runner(ctx))
    except ab.SuiteError as err:
        raise _suite_failed("bench", err) from None
    with bad_input(results.ResultsError):
        stored = results.read_run(path)
    out = console()
    say(out, f"Stored run: {path}")
    say(out, f"{len(stored.results)} benchmark(s), TensorFlow {stored.tf_version}, "
             f"machine {stored.machine_key}")


def ab_command(
    ctx: typer.Context,
    baseline_python: Annotated[Path, typer.Option(
        help="interpreter of the baseline side (e.g. a virtualenv's bin/python)",
        show_default=False)],
    candidate_python: Annotated[Optional[Path], typer.Option(
        help="interpreter of the candidate side (not needed with --calibrate)",
        show_default=False)] = None,
    workflow: Annotated[Optional[list[str]], typer.Option(
        "-w", "--workflow", help="a workflow to A/B (repeatable; default: "
        f"{', '.join(lockstep.DEFAULT_WORKFLOWS)})", show_default=False)] = None,
    max_slowdown: Annotated[Optional[str], typer.Option(
        help=f"allowed slowdown of the candidate, e.g. 5% (default: "
             f"{lockstep.DEFAULT_MAX_SLOWDOWN} in lockstep, {DEFAULT_MAX_SLOWDOWN} with "
             "--sessions)", show_default=False)] = None,
    budget: Annotated[str, typer.Option(
        help="seconds of pairs PER WORKFLOW, e.g. 90s or 3m (start-ups come on top)")
    ] = lockstep.DEFAULT_BUDGET,
    min_pairs: Annotated[int, typer.Option(
        parser=positive_int, help="pairs before a look may decide")
    ] = sequential.DEFAULT_MIN_PAIRS,
    looks: Annotated[int, typer.Option(
        parser=positive_int, help="looks at the pairs at most (each at a Bonferroni share of "
                                  "alpha)")] = sequential.DEFAULT_LOOKS,
    alpha: Annotated[Optional[float], typer.Option(
        parser=open_fraction, help=f"false-alarm rate: over all looks in lockstep (default "
                                   f"{sequential.DEFAULT_ALPHA}); of the Mann-Whitney test "
                                   f"with --sessions (default {stats.DEFAULT_ALPHA})",
        show_default=False)] = None,
    workers: Annotated[int, typer.Option(
        parser=positive_int, help="worker processes per side and workflow (each process has "
                                  "its own lasting speed offset: more workers, narrower CIs)")
    ] = sequential.DEFAULT_WORKERS,
    process_sd: Annotated[str, typer.Option(
        help="the least sd of a worker process's speed offset the CI allows for, e.g. 1.3% "
             "(--calibrate measures it on your machine)")
    ] = f"{sequential.DEFAULT_PROCESS_SD:.1%}",
    inject_slowdown: Annotated[str, typer.Option(
        help="slow the candidate by this share (measuring what the gate detects), e.g. 5%")
    ] = "0",
    json_path: Annotated[Optional[Path], typer.Option(
        "--json", help="write verdicts, ratios, CIs, pairs and seconds here")] = None,
    inconclusive_fails: Annotated[bool, typer.Option(
        "--inconclusive-fails", help=f"exit 1, not {lockstep_ab.EXIT_INCONCLUSIVE}, on an "
                                     "inconclusive verdict")] = False,
    seed: Annotated[Optional[int], typer.Option(
        help="seed of the workers' start order and each pair's order (default: a fresh "
             "seed per workflow, printed with its verdict); --calibrate's injected run uses "
             "seed + 1", show_default=False)] = None,
    calibrate: Annotated[bool, typer.Option(
        "--calibrate", help="power self-test: an A/A of the baseline, the smallest slowdown "
                            "the budget detects, and an injected slowdown of that size")] = False,
    sessions: Annotated[bool, typer.Option(
        "--sessions", help="the session-level mode instead: whole suite runs, alternated, "
                           "pooled and gated (wide CIs: see the README)")] = False,
    pairs: Annotated[int, typer.Option(
        parser=positive_int, help="--sessions: A B pairs of suite runs")] = ab.DEFAULT_PAIRS,
    profile: Annotated[str, typer.Option(help="--sessions: the profile of every run")] = "smoke",
    keyword: KeywordOption = None,
    store: StoreOption = None,
    policy: Annotated[Optional[Path], typer.Option(
        help="--sessions: per-benchmark thresholds")] = None,
    timeout: TimeoutOption = ab.DEFAULT_INVOCATION_TIMEOUT_S,
    root: RootOption = Path("."),
) -> None:
    """A/B two interpreters (e.g. two TensorFlow virtualenvs): is the candidate slower?

    Lockstep (the default): per workflow, --workers worker processes per side
    run round for round next to the other side's; a sequential test on the
    paired ratios decides SLOWER, FASTER, SAME (the CI within +-max slowdown) or
    INCONCLUSIVE (the budget ran out first). Exit 0 same/faster, 1 slower,
    2 bad input, 3 inconclusive (1 with --inconclusive-fails).
    """
    checked = {}
    for side, python in (("baseline", baseline_python), ("candidate", candidate_python)):
        if python is not None:
            with bad_input(ValueError):
                checked[side] = Path(ab.check_python(python, side))
    baseline_python, candidate_python = checked["baseline"], checked.get("candidate")
    if sessions:
        raise typer.Exit(_session_ab(ctx, baseline_python, candidate_python, pairs, profile,
                                     keyword, store, max_slowdown or DEFAULT_MAX_SLOWDOWN,
                                     policy, stats.DEFAULT_ALPHA if alpha is None else alpha,
                                     timeout, root))
    allowed = parse_fraction(max_slowdown or lockstep.DEFAULT_MAX_SLOWDOWN, "--max-slowdown")
    options = dict(workflows=workflow, max_slowdown=allowed,
                   budget_s=lockstep.parse_duration(budget, "--budget"), min_pairs=min_pairs,
                   looks=looks, alpha=sequential.DEFAULT_ALPHA if alpha is None else alpha,
                   workers=workers, seed=seed,
                   process_sd=parse_fraction(process_sd, "--process-sd", allow_zero=True))
    fakes = ctx.obj if isinstance(ctx.obj, dict) else {}
    options.update(run=runner(ctx), open_worker=fakes.get("open_worker", remote.RemoteRun),
                   clock=fakes.get("clock", time.perf_counter))
    if calibrate:
        raise typer.Exit(lockstep.calibrate(baseline_python, **options, json_path=json_path))
    if candidate_python is None:
        raise CliError("--candidate-python is required (or --calibrate, which needs only "
                       "the baseline)")
    raise typer.Exit(lockstep.run_lockstep(
        baseline_python, candidate_python, **options,
        inject=parse_fraction(inject_slowdown, "--inject-slowdown", allow_zero=True),
        json_path=json_path, inconclusive_fails=inconclusive_fails, store=store))


def _session_ab(ctx, baseline_python, candidate_python, pairs, profile, keyword, store,
                max_slowdown, policy, alpha, timeout, root) -> int:
    """The session-level mode: whole suite runs alternated, pooled, gated B vs A."""
    if candidate_python is None:
        raise CliError("--sessions needs --candidate-python")
    profile = _check_profile(profile)
    allowed = parse_fraction(max_slowdown, "--max-slowdown")
    rules = load_policy(policy)
    _check_root(root)
    out = console()
    with progress_bar(out) as progress:
        task = progress.add_task("A/B", total=2 * pairs)

        def started(side: str, pair: int) -> None:
            done = 2 * (pair - 1) + ab.SIDES.index(side)
            progress.update(task, completed=done, description=f"pair {pair}, side {side}")

        try:
            outcome = ab.run_ab(baseline_python, candidate_python, pairs=pairs, profile=profile,
                                keyword=keyword, store=store, cwd=root, timeout=timeout,
                                on_invocation=started, runner=runner(ctx))
        except ab.SuiteError as err:
            progress.stop()
            raise _suite_failed("ab", err) from None
        except results.ResultsError as err:
            raise CliError(str(err)) from None
        progress.update(task, completed=2 * pairs, description="done")
    for side in ab.SIDES:
        for path in outcome.paths(side):
            say(out, f"side {side}: {path}")
    result = gate(outcome.baseline, outcome.candidate, max_slowdown=allowed, policy=rules,
                  alpha=alpha)
    print_gate(out, result)
    return result.exit_code
