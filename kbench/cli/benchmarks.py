"""``kbench bench`` and ``ab``: run the benchmark suite once, or A/B two interpreters."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from kbench import _validate, ab, profiles, results, stats
from kbench.cli._common import (EXIT_REGRESSION, CliError, bad_input, check_option, console, gate,
                                load_policy, parse_fraction, positive_int, runner, say)
from kbench.cli._options import (DEFAULT_MAX_SLOWDOWN, AlphaOption, KeywordOption,
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
        help="interpreter of side A (e.g. a virtualenv's bin/python)", show_default=False)],
    candidate_python: Annotated[Path, typer.Option(
        help="interpreter of side B", show_default=False)],
    pairs: Annotated[int, typer.Option(
        parser=positive_int, help="A B pairs to run")] = ab.DEFAULT_PAIRS,
    profile: Annotated[str, typer.Option(help="benchmark profile of every run")] = "smoke",
    keyword: KeywordOption = None,
    store: StoreOption = None,
    max_slowdown: Annotated[str, typer.Option(
        help="allowed slowdown of B, e.g. 10%")] = DEFAULT_MAX_SLOWDOWN,
    policy: Annotated[Optional[Path], typer.Option(help="per-benchmark thresholds")] = None,
    alpha: AlphaOption = stats.DEFAULT_ALPHA,
    timeout: TimeoutOption = ab.DEFAULT_INVOCATION_TIMEOUT_S,
    root: RootOption = Path("."),
) -> None:
    """Benchmark two interpreters alternately (A B A B ...) in one job, pool, gate B vs A.

    Each run is stored; the per-round samples of each side are pooled and the
    candidate (B) is gated against the baseline (A): exit 1 on a significant
    slowdown beyond the allowed one, or when a run fails (naming its side).
    """
    profile = _check_profile(profile)
    allowed = parse_fraction(max_slowdown, "--max-slowdown")
    rules = load_policy(policy)
    _check_root(root)
    for side, python in (("A", baseline_python), ("B", candidate_python)):
        with bad_input(ValueError):
            ab.check_python(python, side)
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
    raise typer.Exit(result.exit_code)
