"""Same-job A/B mode (kbench.ab): interleaving, bounded invocations, pooling.

The suite is never really run: kbench.testing.FakeSuite stands in for
subprocess.run and stores small fake runs in the store it is given, as the
benchmark session would.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from kbench import ab, compare, results, stats, testing

KEYS = ("test_loop_throughput[cpu-b64-mlp-fit]", "test_loop_throughput[cpu-b64-mlp-custom]")
FakeSuite = functools.partial(testing.FakeSuite, keys=KEYS)


def make_pythons(folder: Path) -> tuple[str, str]:
    """Two executable files standing in for two virtualenvs' interpreters (never executed)."""
    paths = []
    for side in ("a", "b"):
        path = folder / f"venv-{side}" / "bin" / "python"
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\nexit 99\n")
        path.chmod(0o755)
        paths.append(str(path))
    return paths[0], paths[1]


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder with benchmarks/ (the suite itself is faked)."""
    (tmp_path / "benchmarks").mkdir()
    return tmp_path


def stored_run(key_samples: Mapping[str, Sequence[float]], when: str, **kw) -> results.Run:
    """A run as the store reads it back (through its JSON document)."""
    run = testing.fake_run(key_samples, datetime=when, **kw)
    return results.run_from_json(testing.run_document(run), source=when)


# --------------------------------------------------------------------------- interleaving


def test_schedule_alternates_sides_pair_by_pair():
    assert ab.schedule(3) == [("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3), ("B", 3)]


@pytest.mark.parametrize("pairs", [0, -1, 1.5, True])
def test_schedule_rejects_a_bad_pair_count_quoting_it(pairs):
    with pytest.raises(ValueError, match=f"pairs must be a positive int, got {pairs!r}"):
        ab.schedule(pairs)


def test_run_ab_invokes_the_interpreters_alternately_and_stores_each_run(project):
    a, b = make_pythons(project)
    suite = FakeSuite({a: 1.0, b: 1.0})
    seen = []
    outcome = ab.run_ab(a, b, pairs=3, profile="smoke", keyword="loop", store=project / "store",
                        cwd=project, timeout=60, on_invocation=lambda *s: seen.append(s),
                        runner=suite)
    assert suite.pythons() == [a, b, a, b, a, b]
    assert seen == ab.schedule(3)
    assert [inv.side for inv in outcome.invocations] == ["A", "B"] * 3
    paths = outcome.paths("A") + outcome.paths("B")
    assert len(set(paths)) == 6
    store = project / "store"
    assert all(p.is_file() and store in p.parents for p in paths)
    for call in suite.calls:
        command = call["command"]
        assert command[1:5] == ["-m", "pytest", "benchmarks", "--benchmark-only"]
        assert command[command.index("--kbench-profile") + 1] == "smoke"
        assert command[command.index("--kbench-store") + 1] == str(store)
        assert command[command.index("-k") + 1] == "loop"
        assert call["timeout"] == 60 and call["cwd"] == str(project)


def test_run_ab_stores_under_the_project_by_default(project, monkeypatch):
    monkeypatch.delenv(results.STORE_ENV, raising=False)
    a, b = make_pythons(project)
    outcome = ab.run_ab(a, b, pairs=1, cwd=project, runner=FakeSuite({a: 1.0, b: 1.0}))
    default_store = project / results.DEFAULT_STORE
    assert all(default_store in p.parents for p in outcome.paths("A") + outcome.paths("B"))


def test_run_ab_pools_one_median_per_invocation_of_each_side(project):
    a, b = make_pythons(project)
    outcome = ab.run_ab(a, b, pairs=2, store=project / "store", cwd=project,
                        runner=FakeSuite({a: 1.0, b: 0.8}))
    for side, pooled in (("A", outcome.baseline), ("B", outcome.candidate)):
        stored = [results.read_run(p) for p in outcome.paths(side)]
        assert set(pooled.results) == set(KEYS)
        for key in KEYS:
            medians = [statistics.median(run.results[key].samples_per_s) for run in stored]
            assert list(pooled.results[key].samples_per_s) == medians
            rounds_ = [v for run in stored for v in run.results[key].samples_per_s]
            assert pooled.results[key].pooling.round_samples_per_s == tuple(rounds_)
            assert len(rounds_) == 2 * 3


# --------------------------------------------------------------------------- failures


def test_a_failing_invocation_stops_the_ab_naming_the_side_and_exit_code(project):
    a, b = make_pythons(project)
    suite = FakeSuite({a: 1.0, b: 1.0}, exit_codes={4: 3})  # B's second run
    with pytest.raises(ab.SuiteError, match=r"side B \(.*venv-b.*\) run 2 of 3 failed with "
                                            r"exit code 3") as caught:
        ab.run_ab(a, b, pairs=3, store=project / "store", cwd=project, runner=suite)
    assert len(suite.calls) == 4  # nothing ran after the failure
    assert "AssertionError: loss rose" in caught.value.output_tail


def test_an_invocation_past_its_timeout_stops_the_ab(project):
    a, b = make_pythons(project)
    suite = FakeSuite({a: 1.0, b: 1.0}, timeout_at=1)
    with pytest.raises(ab.SuiteError, match=r"side A .* run 1 of 2 timed out after 5 s"):
        ab.run_ab(a, b, pairs=2, store=project / "store", cwd=project, timeout=5, runner=suite)
    assert len(suite.calls) == 1


def test_an_invocation_that_stores_no_run_is_an_error(project):
    a, b = make_pythons(project)
    with pytest.raises(ab.SuiteError, match="side A .* exited 0 but left no new run file"):
        ab.run_ab(a, b, pairs=1, store=project / "store", cwd=project,
                  runner=FakeSuite({a: 1.0, b: 1.0}, stores=False))


def test_run_suite_needs_the_benchmarks_folder(tmp_path):
    with pytest.raises(ab.SuiteError, match="no benchmarks/ folder in"):
        ab.run_suite("python", profile="smoke", store=tmp_path / "s", cwd=tmp_path,
                     runner=FakeSuite({}))


def test_run_ab_refuses_a_missing_or_non_executable_interpreter(project):
    a, _ = make_pythons(project)
    missing = str(project / "nowhere" / "python")
    with pytest.raises(ValueError, match=f"side B interpreter '{missing}' does not exist"):
        ab.run_ab(a, missing, cwd=project, runner=FakeSuite({}))
    plain = project / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    with pytest.raises(ValueError, match=f"side A interpreter '{plain}' is not executable"):
        ab.run_ab(str(plain), a, cwd=project, runner=FakeSuite({}))


def test_check_python_keeps_a_virtualenv_symlink(tmp_path):
    """A venv's python links to the base interpreter; following the link would leave the venv."""
    a, _ = make_pythons(tmp_path)
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(a)
    assert ab.check_python(link, "A") == str(link)


# --------------------------------------------------------------------------- pooling


def test_pool_runs_by_session_keeps_one_median_per_run_and_every_round_aside():
    first = stored_run({KEYS[0]: [1.0, 2.0, 9.0], KEYS[1]: [5.0]}, "2026-11-23T12:00:01+00:00")
    second = stored_run({KEYS[0]: [3.0], KEYS[1]: [6.0, 7.0]}, "2026-11-23T12:00:02+00:00")
    pooled = ab.pool_runs([first, second], source="A")
    assert pooled.results[KEYS[0]].samples_per_s == (2.0, 3.0)
    assert pooled.results[KEYS[1]].samples_per_s == (5.0, 6.5)
    record = pooled.results[KEYS[0]]
    assert record.pooling.unit == "session"
    assert record.pooling.round_samples_per_s == (1.0, 2.0, 9.0, 3.0)
    assert len(record.round_s) == 4
    stored = results.run_from_json(testing.run_document(pooled))  # and it stores as it reads
    assert stored.results[KEYS[0]].pooling == record.pooling


def test_pool_runs_refuses_an_unknown_unit():
    run = stored_run({KEYS[0]: [1.0]}, "2026-11-23T12:00:01+00:00")
    with pytest.raises(ValueError, match="unit must be one of .*, got 'rounds'"):
        ab.pool_runs([run], unit="rounds")


def test_pool_runs_by_round_concatenates_samples_in_run_order():
    first = stored_run({KEYS[0]: [1.0, 2.0], KEYS[1]: [5.0]}, "2026-11-23T12:00:01+00:00")
    second = stored_run({KEYS[0]: [3.0], KEYS[1]: [6.0, 7.0]}, "2026-11-23T12:00:02+00:00")
    pooled = ab.pool_runs([first, second], source="A", unit="round")
    assert pooled.results[KEYS[0]].samples_per_s == (1.0, 2.0, 3.0)
    assert pooled.results[KEYS[1]].samples_per_s == (5.0, 6.0, 7.0)
    assert len(pooled.results[KEYS[0]].round_s) == 3
    assert pooled.results[KEYS[0]].throughput.n == 3  # summarises the pool, not one run
    assert pooled.results[KEYS[0]].pooling.sources == (first.source, second.source)
    assert pooled.datetime == first.datetime and pooled.source == "A"
    assert first.results[KEYS[0]].samples_per_s == (1.0, 2.0)  # inputs untouched


def test_pool_runs_refuses_runs_with_different_benchmarks_naming_them():
    first = stored_run({KEYS[0]: [1.0], KEYS[1]: [1.0]}, "2026-11-23T12:00:01+00:00")
    second = stored_run({KEYS[0]: [1.0]}, "2026-11-23T12:00:02+00:00")
    with pytest.raises(results.ResultsError, match=r"cannot pool .* lacks \['test_loop_throughput"
                                                   r"\[cpu-b64-mlp-custom\]'\]"):
        ab.pool_runs([first, second])


def test_pool_runs_refuses_runs_of_different_tensorflow_versions():
    first = stored_run({KEYS[0]: [1.0]}, "2026-11-23T12:00:01+00:00")
    second = stored_run({KEYS[0]: [1.0]}, "2026-11-23T12:00:02+00:00", tf_version="2.20.0")
    with pytest.raises(results.ResultsError, match=r"different tf_version: \['2.20.0', '2.21.0'\]"):
        ab.pool_runs([first, second])


def test_pool_runs_refuses_nothing_to_pool():
    with pytest.raises(results.ResultsError, match="empty"):
        ab.pool_runs([])


def test_five_pairs_make_a_slowdown_detectable_that_fewer_cannot_show(project):
    """One sample per session: 4 a side can never be significant at alpha=0.01, 5 can."""
    a, b = make_pythons(project)
    outcome = ab.run_ab(a, b, pairs=ab.DEFAULT_PAIRS, store=project / "store", cwd=project,
                        runner=FakeSuite({a: 1.0, b: 0.8}))
    assert ab.DEFAULT_PAIRS == stats.min_samples_for(stats.DEFAULT_ALPHA) == 5
    four = [ab.pool_runs([results.read_run(p) for p in outcome.paths(side)[:4]])
            for side in ab.SIDES]
    assert compare.gate(*four, max_slowdown=0.10).exit_code == 0
    pooled = compare.gate(outcome.baseline, outcome.candidate, max_slowdown=0.10)
    assert pooled.exit_code == 1
    assert {f.key for f in pooled.failures} == set(KEYS)
    assert all(f.ratio == pytest.approx(0.8, rel=0.05) for f in pooled.failures)


def test_one_invalid_session_makes_the_pooled_side_invalid_and_the_gate_refuse_it():
    good = stored_run({KEYS[0]: [1.0, 2.0]}, "2026-11-23T12:00:01+00:00")
    frozen = stored_run({KEYS[0]: [3.0, 4.0]}, "2026-11-23T12:00:02+00:00",
                        per_key={KEYS[0]: {"invalid": "did not learn while timed"}})
    pooled = ab.pool_runs([good, frozen], source="B")
    assert pooled.results[KEYS[0]].invalid == f"{frozen.source}: did not learn while timed"
    baseline = ab.pool_runs([good, good], source="A")
    with pytest.raises(compare.ComparisonError, match="invalid benchmark"):
        compare.gate(baseline, pooled)
