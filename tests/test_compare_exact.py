"""Tests for kbench.compare.exact and ``kbench check --exact``: exact counters against
the committed expectations, the ratchet, and the update."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import assert_bad_input, invoke

from kbench import testing
from kbench.compare import ComparisonError
from kbench.compare import exact
from kbench.counters import Counters

FIT = "test_loop_throughput[cpu-b64-mlp-mnist_5k-fit]"
XLA = "test_execution_throughput[cpu-b64-mlp-fit-xla]"


def counters(traces=1, nodes=120, xla=False):
    names = {"multi_step_on_iterator": traces, "one_step_on_data": traces}
    return Counters(traces=names, retraces=dict.fromkeys(names, 0),
                    graph_nodes={"multi_step_on_iterator": nodes},
                    xla_functions=("one_step_on_data",) if xla else ())


def make_run(fit=None, xla=None, *, tf_version="2.21.0", source=""):
    per_key = {FIT: {"counters": fit or counters()}, XLA: {"counters": xla or counters(xla=True)},
               "test_input_only": {}}
    return testing.fake_run({key: [1000.0, 1010.0, 990.0] for key in per_key},
                            per_key=per_key, tf_version=tf_version, source=source)


def test_the_expectations_hold_each_benchmarks_counters_and_only_those_with_some():
    found = exact.expected_counters(make_run())
    assert set(found) == {FIT, XLA}  # the input-only benchmark has no counters
    assert found[FIT] == {"traces": {"multi_step_on_iterator": 1, "one_step_on_data": 1},
                          "graph_nodes": {"multi_step_on_iterator": 120}}
    assert found[XLA]["xla_compilations"] == 1


def test_a_run_equal_to_its_expectations_passes():
    run = make_run()
    outcome = exact.check_exact(run, exact.expected_counters(run))
    assert outcome.passed and set(outcome.checked) == {FIT, XLA} and outcome.unknown == ()


@pytest.mark.parametrize("changed, field, expected, found, words", [
    (dict(fit=counters(traces=2)), "traces.one_step_on_data", 1, 2, "(more)"),
    (dict(fit=counters(nodes=100)), "graph_nodes.multi_step_on_iterator", 120, 100,
     "(fewer: an improvement)"),
    (dict(xla=counters(traces=3, xla=True)), "xla_compilations", 1, 3, "(more)"),
])
def test_any_change_fails_an_improvement_too(changed, field, expected, found, words):
    baseline = exact.expected_counters(make_run())
    outcome = exact.check_exact(make_run(**changed), baseline)
    assert not outcome.passed
    [change] = [c for c in outcome.changes if c.field == field]
    assert (change.expected, change.found) == (expected, found)
    assert str(change).endswith(f"{field} expected {expected!r}, got {found!r} {words}")


def test_a_benchmark_the_expectations_do_not_know_fails_and_one_not_run_is_not_checked():
    expectations = exact.expected_counters(make_run())
    del expectations[XLA]
    expectations["test_not_selected"] = {"traces": {"f": 1}}
    outcome = exact.check_exact(make_run(), expectations)
    assert outcome.unknown == (XLA,) and outcome.checked == (FIT,) and not outcome.passed


def test_a_run_without_counters_cannot_pass_the_exact_check(tmp_path):
    old = testing.fake_run({FIT: [1000.0, 1010.0, 990.0]}, source="old.json")
    with pytest.raises(ComparisonError, match=r"\(old.json\) has no exact counters to check"):
        exact.check_exact(old, exact.expected_counters(make_run()))
    with pytest.raises(ComparisonError, match=r"\(old.json\) has no exact counters to write"):
        exact.write_expectations(old, tmp_path / "never-written.toml")
    assert not (tmp_path / "never-written.toml").exists()


def test_write_then_read_round_trips_and_keeps_other_benchmarks(tmp_path):
    path = tmp_path / "tf-2.21.0.toml"
    path.write_text('["test_other"]\ntraces = {f = 4}\n')
    written = exact.write_expectations(make_run(), path)
    assert set(written) == {FIT, XLA, "test_other"}
    assert exact.read_expectations(path) == written
    assert path.read_text().startswith("# kbench check --exact")


def test_expectations_are_per_tensorflow_version(tmp_path):
    assert exact.expectations_path(make_run(tf_version="2.19.1"), tmp_path) == \
        tmp_path / "tf-2.19.1.toml"


@pytest.mark.parametrize("text, quoted", [
    (None, "no exact expectations at"),
    ("traces = [", "not a readable TOML file"),
    ('["k"]\ncolour = 1\n', "['k'] must be a table of ('traces', 'graph_nodes', "
                            "'xla_compilations'), got {'colour': 1}"),
])
def test_bad_expectations_are_refused_saying_what_is_wrong(tmp_path, text, quoted):
    path = tmp_path / "tf-2.21.0.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ComparisonError) as info:
        exact.read_expectations(path)
    assert quoted in str(info.value)


# --------------------------------------------------------------------------- kbench check --exact


def stored(tmp_path, run, name="run.json"):
    return str(testing.write_run(tmp_path / name, run))


def test_check_exact_update_then_check_passes_and_a_change_fails_with_the_update_command(
        tmp_path):
    folder = tmp_path / "expected"
    first = stored(tmp_path, make_run())
    wrote = invoke("check", "--exact", "--update", "--expected", folder, first)
    assert wrote.exit_code == 0, wrote.output
    assert "wrote the exact counters of 2 benchmark(s)" in wrote.stdout
    same = invoke("check", "--exact", "--expected", folder, first)
    assert same.exit_code == 0, same.output
    assert "2 benchmark(s) checked" in same.stdout and "every exact counter as expected" \
        in same.stdout
    changed = stored(tmp_path, make_run(fit=counters(traces=2)), "changed.json")
    result = invoke("check", "--exact", "--expected", folder, changed)
    assert result.exit_code == 1, result.output
    assert f"changed: {FIT}: traces.multi_step_on_iterator expected 1, got 2 (more)" \
        in result.stdout
    assert "update the expectations: kbench check --exact --update" in result.stderr
    assert changed in result.stderr


def test_check_exact_without_expectations_for_the_version_exits_2_saying_how(tmp_path):
    run = stored(tmp_path, make_run(tf_version="2.19.1"))
    assert_bad_input(invoke("check", "--exact", "--expected", tmp_path / "none", run),
                     "no exact expectations at", "tf-2.19.1.toml", "--exact --update")


def test_update_needs_exact_and_one_run(tmp_path):
    one = stored(tmp_path, make_run())
    assert_bad_input(invoke("check", "--update", one), "--update", "--exact")
    two = stored(tmp_path, make_run(), "two.json")
    assert_bad_input(invoke("check", "--exact", "--update", "--expected", tmp_path, one, two),
                     "found 2 runs")


def test_the_committed_expectations_are_readable_and_cover_the_smoke_run():
    files = sorted((Path(__file__).parents[1] / exact.EXPECTED_DIR).glob("tf-*.toml"))
    assert files, "no committed expectations: CI's `kbench check --exact` needs them"
    for path in files:
        entries = exact.read_expectations(path)
        assert any(key.startswith("test_loop_throughput[cpu-b64-mlp-") for key in entries), path
