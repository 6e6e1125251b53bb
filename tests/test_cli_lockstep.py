"""``kbench ab`` in lockstep and ``--calibrate`` (kbench/cli/lockstep.py), with fake workers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_ab import make_pythons
from test_cli import assert_bad_input, invoke
from test_lockstep_ab import FakeWorker, Machine

from kbench import lockstep_ab
from kbench.cli import lockstep


def imports(ok=True):
    """A subprocess runner for the interpreter check: kbench imports, or it does not."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(
            command, 0 if ok else 1, "", "" if ok else "ModuleNotFoundError: No module named "
                                                       "'kbench'")
    run.calls = calls
    return run


def fakes(tmp_path, candidate_factor=1.0, ok=True):
    """Fake interpreters, the import check and workers: the candidate's rounds take
    ``candidate_factor`` times the baseline's."""
    a, b = make_pythons(tmp_path)
    machine = Machine(seed=3)

    def open_worker(request, python):
        return FakeWorker(machine, 0.1 * (candidate_factor if python == b else 1.0))(
            request, python)
    return a, b, {"runner": imports(ok), "open_worker": open_worker, "clock": machine.clock}


# The fake workers have no lasting speed offsets of their own: the CI allows for tiny ones.
# A fixed seed of the pair orders makes each fake A/B the same every run.
STEADY = ("--process-sd", "0.2%", "--seed", "0")


def ab(*args, obj):
    return invoke("ab", *args, "--budget", "60s", "--min-pairs", "10", *STEADY, obj=obj)


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """Every A/B here stores its runs in a store of its own."""
    monkeypatch.setenv("KBENCH_STORE", str(tmp_path / "store"))
    return tmp_path / "store"


def test_a_slower_candidate_fails_with_its_ratio_ci_and_pairs(tmp_path):
    a, b, obj = fakes(tmp_path, candidate_factor=1 / 0.85)
    result = ab("--baseline-python", a, "--candidate-python", b, "--max-slowdown", "5%", obj=obj)
    assert result.exit_code == 1, result.output
    [line] = [li for li in result.stdout.splitlines() if "candidate/baseline" in li]
    assert ": SLOWER  candidate/baseline 0.8" in line and " worker(s) a side in " in line
    assert line.endswith("--seed 0 repeats its orders)")
    assert "overall: SLOWER" in result.stdout
    stored = [li.rsplit(": ", 1)[1] for li in result.stdout.splitlines()
              if "run (its rounds, paired with the other's):" in li]
    assert len(stored) == 2 and all(Path(p).is_file() for p in stored)


def test_equal_sides_are_the_same_and_the_json_holds_every_workflow(tmp_path):
    a, b, obj = fakes(tmp_path)
    out = tmp_path / "ab.json"
    result = ab("--baseline-python", a, "--candidate-python", b, "-w",
                "mlp-sequential-fit-function-fp32", "-w", "cnn-functional-fit-function-fp32",
                "--json", out, obj=obj)
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["overall"] == "same" and document["max_slowdown"] == 0.05
    assert [w["workflow"] for w in document["workflows"]] == [
        "mlp-sequential-fit-function-fp32", "cnn-functional-fit-function-fp32"]
    assert all(w["pairs"] == len(w["round_s"]["baseline"]) for w in document["workflows"])
    assert {w["workers"] for w in document["workflows"]} == {4}  # the default


@pytest.mark.parametrize("strict, code", [((), lockstep_ab.EXIT_INCONCLUSIVE),
                                          (("--inconclusive-fails",), 1)])
def test_an_undecided_budget_exits_inconclusive_or_fails_when_asked(tmp_path, strict, code):
    a, b, obj = fakes(tmp_path, candidate_factor=1 / 0.975)
    result = invoke("ab", "--baseline-python", a, "--candidate-python", b, "--budget", "3s",
                    "--max-slowdown", "3%", "--min-pairs", "10", *STEADY, *strict, obj=obj)
    assert result.exit_code == code, result.output
    assert "overall: INCONCLUSIVE" in result.stdout


def test_an_interpreter_without_kbench_is_refused_naming_its_side_before_any_worker(tmp_path):
    a, b, obj = fakes(tmp_path, ok=False)
    started = []
    obj["open_worker"] = lambda request, python: started.append(python)
    assert_bad_input(ab("--baseline-python", a, "--candidate-python", b, obj=obj),
                     "the baseline side's interpreter", "cannot import kbench",
                     "No module named 'kbench'")
    assert started == []


@pytest.mark.parametrize("args, fragments", [
    (("--budget", "soon"), ("'--budget'", "'soon'")),
    (("--budget", "0s"), ("'--budget'", "'0s'")),
    (("--inject-slowdown", "100%"), ("'--inject-slowdown'", "'100%'")),
    (("--looks", "0"), ("'--looks'", "got 0")),
    (("-w", "mlp-nope"), ("mlp-nope",)),
    (("--workers", "0"), ("'--workers'", "got 0")),
    (("--process-sd", "lots"), ("'--process-sd'", "'lots'")),
])
def test_bad_options_exit_2_quoting_the_value(tmp_path, args, fragments):
    a, b, obj = fakes(tmp_path)
    assert_bad_input(invoke("ab", "--baseline-python", a, "--candidate-python", b, *args,
                            obj=obj), *fragments)


def test_without_a_candidate_only_calibrate_runs(tmp_path):
    a, _, obj = fakes(tmp_path)
    assert_bad_input(invoke("ab", "--baseline-python", a, obj=obj), "--candidate-python")


def test_calibrate_prints_the_minimum_detectable_slowdown_and_checks_it_by_injection(tmp_path):
    a, _, obj = fakes(tmp_path)
    result = invoke("ab", "--baseline-python", a, "--calibrate", "--budget", "30s",
                    "--max-slowdown", "3%", "--min-pairs", "10", "--json", tmp_path / "cal.json",
                    *STEADY, obj=obj)
    assert result.exit_code == 0, result.output
    [calibrated] = json.loads((tmp_path / "cal.json").read_text())["workflows"]
    assert calibrated["a_a"]["pairs"] > 0 and calibrated["power"]["min_detectable"] > 0
    assert calibrated["injected"]["injected"]["candidate"] == pytest.approx(
        round(calibrated["power"]["min_detectable"], 4))
    text = result.stdout
    assert "A/A" in text and "per-pair spread" in text
    assert "a worker process's speed offset: " in text and "% measured" in text
    assert "the gate detects a slowdown of" in text
    [injected] = [li for li in text.splitlines() if ": injected " in li]
    assert "measured" in injected and "SLOWER" in injected


@pytest.mark.parametrize("text, seconds", [("90s", 90.0), ("3m", 180.0), ("1.5h", 5400.0),
                                           ("45", 45.0), (" 2 min ", 120.0)])
def test_parse_duration(text, seconds):
    assert lockstep.parse_duration(text, "--budget") == seconds
