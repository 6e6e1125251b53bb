"""kbench.lockstep_ab: the conductor, with fake workers (no TensorFlow, no processes)."""

import math
import os
import sys

import numpy as np
import pytest

from kbench import lockstep_ab, profiles, remote, results, sequential, testing
from kbench.lockstep_ab import BASELINE, CANDIDATE, ABError, Side
from kbench.sequential import Design
from kbench.workflows import WorkflowSpec

SPEC = WorkflowSpec(batch_size=64)
PROFILE = profiles.get_profile("smoke")


class Machine:
    """A fake clock, and a drift every round shares: what interleaving cancels."""

    def __init__(self, seed=0, drift=0.3, noise=0.05):
        self.now, self.rounds = 0.0, 0
        self.rng = np.random.default_rng(seed)
        self.drift, self.noise = drift, noise

    def clock(self):
        return self.now

    def round(self, base_s):
        self.rounds += 1
        slow = 1 + self.drift * math.sin(self.rounds / 7)  # slow swings of the whole machine
        seconds = base_s * slow * math.exp(self.noise * self.rng.standard_normal())
        self.now += seconds + 0.01
        return seconds


class FakeWorker:
    """A side's worker: rounds of ``round_s`` seconds (stretched by an injected slowdown)."""

    opened: list = []

    def __init__(self, machine, round_s, fail=None):
        self.machine, self.round_s, self.fail = machine, round_s, fail
        self.info, self.cpu_marks, self.closed = {}, [], False
        self.cpu = 0.0

    def __call__(self, request, python):
        self.request, self.python = request, python
        return self

    def __enter__(self):
        if self.fail == "start":
            raise remote.RemoteError(f"cannot start {self.python!r}")
        FakeWorker.opened.append(self)
        self.info = {"steps_per_round": 10, "tf_version": self.python, "startup_s": 1.0,
                     "fingerprint": testing.fake_fingerprint()}
        return self

    def __exit__(self, *exc):
        self.closed = True

    def warm_up(self):
        pass

    def next_round(self):
        if self.fail == "round":
            raise remote.RemoteError("the child exited (code 1)")
        before = self.cpu + 0.001  # it used a millisecond while idle
        seconds = self.machine.round(self.round_s / (1 - self.request["slowdown"]))
        self.cpu = before + seconds
        self.cpu_marks.append((before, self.cpu))
        return seconds


def run(candidate_s=0.1, *, slowdown=0.0, budget_s=60.0, design=None, fail=None, seed=0):
    machine = Machine(seed)
    workers = {BASELINE: FakeWorker(machine, 0.1),
               CANDIDATE: FakeWorker(machine, candidate_s, fail=fail)}
    return lockstep_ab.run_workflow(
        SPEC, Side(BASELINE, "A/bin/python"), Side(CANDIDATE, "B/bin/python", slowdown),
        PROFILE, design or Design(0.03, min_pairs=10), budget_s, seed=seed,
        open_worker=lambda request, python: workers[
            BASELINE if python.startswith("A") else CANDIDATE](request, python),
        clock=machine.clock), workers


def test_identical_sides_are_the_same_despite_the_machines_drift():
    result, _ = run()
    assert result.verdict == sequential.SAME
    assert result.low >= 0.97 and result.high <= 1 / 0.97
    assert result.tf_versions == {BASELINE: "A/bin/python", CANDIDATE: "B/bin/python"}


def test_a_10_percent_slower_candidate_is_slower_and_stops_early():
    result, _ = run(0.1 / 0.9)
    assert result.verdict == sequential.SLOWER
    assert result.ratio == pytest.approx(0.9, rel=0.02)
    assert result.pairs_s < 60.0 / 2  # decided at an early look


def test_an_injected_slowdown_reaches_the_worker_and_shows_as_that_ratio():
    result, workers = run(slowdown=0.05)
    assert workers[CANDIDATE].request["slowdown"] == 0.05
    assert workers[BASELINE].request["slowdown"] == 0.0
    assert result.injected == {BASELINE: 0.0, CANDIDATE: 0.05}
    assert result.ratio == pytest.approx(0.95, rel=0.01)
    assert result.verdict == sequential.SLOWER


def test_pairs_are_run_in_a_random_order_so_each_side_goes_first_about_half_the_time():
    result, _ = run(budget_s=200.0, design=Design(0.001, min_pairs=10))
    share = result.first.count(BASELINE) / result.pairs
    assert result.pairs > 200 and 0.4 < share < 0.6
    assert len(result.round_s[BASELINE]) == len(result.round_s[CANDIDATE]) == result.pairs


def test_a_budget_too_short_to_decide_is_inconclusive():
    result, _ = run(0.1 / 0.985, budget_s=5.0, design=Design(0.03, min_pairs=10))
    assert result.verdict == sequential.INCONCLUSIVE


def test_the_idle_sides_cpu_use_between_its_rounds_is_measured():
    result, _ = run()
    # 1 ms of CPU per gap of about one other round (~0.1 s + 0.01 s): ~0.01 cores.
    assert 0.003 < result.idle_cpu_share[BASELINE] < 0.03


@pytest.mark.parametrize("fail", ["start", "round"])
def test_a_failing_side_is_named_and_the_other_sides_worker_is_closed(fail):
    with pytest.raises(ABError, match=r"the candidate side failed on mlp-.*B/bin/python|"
                                      r"the candidate side failed on mlp-.*code 1"):
        run(fail=fail)
    baseline = [w for w in FakeWorker.opened if w.python.startswith("A")][-1]
    assert baseline.closed


@pytest.mark.parametrize("fields, quoted", [
    ({"name": "champion", "python": "p"}, "champion"),
    ({"name": BASELINE, "python": ""}, "python"),
    ({"name": CANDIDATE, "python": "p", "slowdown": 1.0}, "slowdown"),
])
def test_side_validates(fields, quoted):
    with pytest.raises(ABError, match=quoted):
        Side(**fields)


def test_to_dict_holds_verdict_ratio_ci_pairs_and_seconds():
    result, _ = run()
    data = result.to_dict()
    assert data["verdict"] == result.verdict and data["pairs"] == result.pairs
    assert data["looks"][-1]["pairs"] == result.pairs and data["pairs_s"] > 0


def test_both_sides_are_stored_as_runs_whose_records_pair_round_by_round(tmp_path):
    from kbench import compare

    result, _ = run(0.1 / 0.9)
    paths = lockstep_ab.store_results([result], tmp_path)
    base, cand = (results.read_run(paths[side]) for side in (BASELINE, CANDIDATE))
    key = lockstep_ab.benchmark_key(result.workflow)
    assert set(base.results) == set(cand.results) == {key}
    a, b = base.results[key], cand.results[key]
    assert compare.paired(a, b) and a.lockstep == b.lockstep
    assert b.extras["verdict"] == "slower" and b.extras["injected_slowdown"] == 0.0
    ratios = np.asarray(b.samples_per_s) / np.asarray(a.samples_per_s)
    assert np.exp(np.mean(np.log(ratios))) == pytest.approx(result.ratio, rel=1e-6)
    assert paths[BASELINE] != paths[CANDIDATE]  # same TF and machine: two files all the same


@pytest.mark.parametrize("verdicts, overall, code, strict", [
    (["same", "faster"], "faster", 0, 0), (["same", "same"], "same", 0, 0),
    (["same", "inconclusive"], "inconclusive", lockstep_ab.EXIT_INCONCLUSIVE, 1),
    (["inconclusive", "slower"], "slower", 1, 1),
])
def test_overall_verdict_and_exit_codes(verdicts, overall, code, strict):
    assert lockstep_ab.overall_verdict(verdicts) == overall
    assert lockstep_ab.exit_code(overall) == code
    assert lockstep_ab.exit_code(overall, inconclusive_fails=True) == strict


# --------------------------------------------------------------------------- power


def test_power_from_an_a_a_matches_what_simulated_injections_detect():
    """The minimum detectable slowdown is called slower ~95% of the time by the
    sequential test; half of it far less often."""
    rng = np.random.default_rng(7)
    sd, per_s, budget = 0.15, 4.0, 120.0
    design = Design(0.03)
    estimate = lockstep_ab.power(sd * rng.standard_normal(400), 100.0, budget, design)
    assert estimate.pairs == 480 and estimate.pair_sd == pytest.approx(sd, rel=0.1)

    def detected(slowdown, tests=300):
        hits = 0
        for _ in range(tests):
            logs = math.log(1 - slowdown) + sd * rng.standard_normal(480)
            test = sequential.SequentialTest(design, budget)
            for i in range(480):
                if test.update(logs[:i + 1], (i + 1) / per_s):
                    break
            hits += test.verdict == sequential.SLOWER
        return hits / tests

    assert 0.90 <= detected(estimate.min_detectable) <= 1.0
    assert detected(estimate.min_detectable / 2) < 0.5


def test_power_needs_an_a_a_with_pairs():
    with pytest.raises(ABError, match="at least 3"):
        lockstep_ab.power([0.1, 0.0], 1.0, 60.0, Design(0.03))


# --------------------------------------------------------------------------- real workers


def _workers_alive() -> list[int]:
    """Pids of this process's kbench.remote children still running."""
    import os

    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue
        if parent == os.getpid() and b"kbench.remote" in command:
            alive.append(int(entry))
    return alive


def test_an_interpreter_that_cannot_import_kbench_is_named_with_its_side(tmp_path):
    bare = tmp_path / "python"
    bare.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'kbench'\" >&2\n"
                    "exit 1\n")
    bare.chmod(0o755)
    with pytest.raises(ABError, match=r"the candidate side's interpreter .*python' cannot "
                                      r"import kbench .*No module named 'kbench'"):
        lockstep_ab.check_worker_python(Side(CANDIDATE, str(bare)))
    lockstep_ab.check_worker_python(Side(BASELINE, sys.executable))  # this one can


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts worker processes in /proc")
def test_a_real_a_a_runs_pairs_between_two_workers_and_leaves_none_behind():
    """Two real worker processes (this interpreter on both sides), a few seconds of pairs."""
    design = Design(0.03, min_pairs=5, looks=2)
    result = lockstep_ab.run_workflow(SPEC, Side(BASELINE, sys.executable),
                                      Side(CANDIDATE, sys.executable), PROFILE, design, 2.0)
    assert result.pairs >= 5 and result.verdict in sequential.VERDICTS
    assert set(result.tf_versions.values()) == {__import__("tensorflow").__version__}
    assert all(share is not None and share < 0.5 for share in result.idle_cpu_share.values())
    assert 0.5 < result.ratio < 2.0
    assert _workers_alive() == []


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts worker processes in /proc")
def test_ctrl_c_during_the_pairs_stops_both_real_workers():
    def interrupt(pairs, test, elapsed):
        if pairs == 3:
            assert len(_workers_alive()) == 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lockstep_ab.run_workflow(SPEC, Side(BASELINE, sys.executable),
                                 Side(CANDIDATE, sys.executable), PROFILE, Design(0.03), 60.0,
                                 on_pair=interrupt)
    assert _workers_alive() == []
