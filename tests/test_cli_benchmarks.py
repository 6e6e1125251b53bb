"""``kbench bench`` and ``ab`` (kbench/cli/benchmarks.py), with a FakeSuite as the runner."""

from __future__ import annotations

import sys

from test_ab import FakeSuite, make_pythons, project  # noqa: F401 (project is a fixture)
from test_cli import assert_bad_input, invoke


def test_bench_runs_the_suite_with_this_python_and_reports_where_it_stored(project):
    store = project / "store"
    suite = FakeSuite({sys.executable: 1.0})
    result = invoke("bench", "--profile", "smoke", "--store", store, "-k", "loop",
                    "--root", project, obj={"runner": suite})
    assert result.exit_code == 0, result.output
    [call] = suite.calls
    assert call["command"][:5] == [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only"]
    assert call["command"][-4:] == ["--kbench-store", str(store), "-k", "loop"]
    [stored] = list(store.rglob("*.json"))
    assert f"Stored run: {stored}" in result.stdout
    machine = stored.parent.name  # the store files runs under <tf>/<machine>/
    assert f"2 benchmark(s), TensorFlow 2.21.0, machine {machine}" in result.stdout


def test_bench_exits_1_when_the_suite_fails(project):
    suite = FakeSuite({sys.executable: 1.0}, exit_codes={1: 1})
    result = invoke("bench", "--profile", "smoke", "--store", project / "s", "--root", project,
                    obj={"runner": suite})
    assert result.exit_code == 1
    assert "failed with exit code 1" in result.stderr


def test_bench_refuses_an_unknown_profile_or_a_folder_without_benchmarks(tmp_path):
    assert_bad_input(invoke("bench", "--profile", "huge"), "'--profile'", "'huge'")
    assert_bad_input(invoke("bench", "--profile", "smoke", "--root", tmp_path),
                     "no benchmarks/ folder")


def test_ab_interleaves_pools_and_gates_the_candidate(project):
    a, b = make_pythons(project)
    suite = FakeSuite({a: 1.0, b: 0.8})
    result = invoke("ab", "--sessions",
                    "--baseline-python", a, "--candidate-python", b, "--pairs", "5",
                    "--store", project / "store", "--root", project, obj={"runner": suite})
    assert result.exit_code == 1, result.output
    assert suite.pythons() == [a, b] * 5
    assert sum(line.startswith("side A: ") for line in result.stdout.splitlines()) == 5
    assert "FAIL: 2 benchmark(s)" in result.stdout
    assert "A: medians of 5 run(s) of" in result.stdout


def test_ab_passes_when_both_sides_are_as_fast(project):
    a, b = make_pythons(project)
    result = invoke("ab", "--sessions",
                    "--baseline-python", a, "--candidate-python", b, "--pairs", "2",
                    "--store", project / "store", "--root", project,
                    obj={"runner": FakeSuite({a: 1.0, b: 1.0})})
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout


def test_ab_reports_a_failed_invocation_with_its_side_and_exit_code(project):
    a, b = make_pythons(project)
    suite = FakeSuite({a: 1.0, b: 1.0}, exit_codes={2: 4})
    result = invoke("ab", "--sessions",
                    "--baseline-python", a, "--candidate-python", b, "--root", project,
                    "--store", project / "store", obj={"runner": suite})
    assert result.exit_code == 1
    assert "side B" in result.stderr and "run 1 of 5 failed with exit code 4" in result.stderr
    assert "AssertionError: loss rose" in result.stderr


def test_ab_bad_arguments_exit_2(project):
    a, _ = make_pythons(project)
    missing = project / "nowhere" / "python"
    assert_bad_input(invoke("ab", "--sessions",
                            "--baseline-python", a, "--candidate-python", missing,
                            "--root", project), "side candidate", str(missing))
    assert_bad_input(invoke("ab", "--sessions", "--baseline-python", a, "--candidate-python", a,
                            "--pairs", "0"), "'--pairs'", "got 0")
    assert_bad_input(invoke("ab", "--sessions", "--baseline-python", a, "--candidate-python", a,
                            "--max-slowdown", "2"), "'--max-slowdown'", "got '2'")
