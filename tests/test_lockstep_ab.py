"""kbench.lockstep_ab: the conductor, with fake workers (no TensorFlow, no processes)."""

import dataclasses
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

    def __init__(self, machine, round_s, fail=None, calibrates=10):
        self.machine, self.round_s, self.fail = machine, round_s, fail
        self.calibrates = calibrates
        self.info, self.cpu_marks, self.closed, self.killed = {}, [], False, False
        self.cpu = 0.0

    def __call__(self, request, python):
        self.request, self.python = request, python
        return self

    def __enter__(self):
        if self.fail == "start":
            raise remote.RemoteError(f"cannot start {self.python!r}")
        if self.fail == "interrupt":
            raise KeyboardInterrupt
        FakeWorker.opened.append(self)
        self.info = {"steps_per_round": self.request.get("steps_per_round", self.calibrates),
                     "tf_version": self.python, "startup_s": 1.0,
                     "fingerprint": testing.fake_fingerprint()}
        return self

    def __exit__(self, *exc):
        self.closed = True

    def kill(self):
        self.killed = True

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


# The fake workers have no lasting speed offsets of their own: a design that allows
# for tiny ones.
FAKE_DESIGN = Design(0.03, min_pairs=10, workers=2, process_sd=0.002)


def run(candidate_s=0.1, *, slowdown=0.0, budget_s=60.0, design=None, fail=None, seed=0,
        lane_speeds=None, made=None):
    """A/B on fake workers; also returns each side's workers in the order they were made
    (the baseline's first is the precursor, then lane 0, 1, ...; in ``made`` if given).
    Each worker calibrates one step more than the one made before it."""
    machine = Machine(seed)
    made = {BASELINE: [], CANDIDATE: []} if made is None else made

    def open_worker(request, python):
        side = BASELINE if python.startswith("A") else CANDIDATE
        lane = len(made[side]) - (side == BASELINE)
        speed = lane_speeds[lane] if lane_speeds and side == CANDIDATE else 1.0
        worker = FakeWorker(machine, (0.1 if side == BASELINE else candidate_s) / speed,
                            fail=fail if side == CANDIDATE else None,
                            calibrates=10 + len(made[BASELINE]) + len(made[CANDIDATE]))
        made[side].append(worker)
        return worker(request, python)

    return lockstep_ab.run_workflow(
        SPEC, Side(BASELINE, "A/bin/python"), Side(CANDIDATE, "B/bin/python", slowdown),
        PROFILE, design or FAKE_DESIGN, budget_s, seed=seed, open_worker=open_worker,
        clock=machine.clock), made


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
    result, made = run(slowdown=0.05)
    assert {w.request["slowdown"] for w in made[CANDIDATE]} == {0.05}
    assert {w.request["slowdown"] for w in made[BASELINE]} == {0.0}  # the precursor's too
    assert result.injected == {BASELINE: 0.0, CANDIDATE: 0.05}
    assert result.ratio == pytest.approx(0.95, rel=0.01)
    assert result.verdict == sequential.SLOWER


def test_a_runs_seed_is_kept_and_repeats_its_start_and_pair_orders():
    drawn, _ = run(seed=None)  # a fresh seed (and a fake machine of fresh noise)
    assert isinstance(drawn.seed, int)
    repeated, _ = run(seed=drawn.seed)
    n = min(repeated.pairs, drawn.pairs)  # the noise may decide at another look
    assert (repeated.first[:n], repeated.start_order) == (drawn.first[:n], drawn.start_order)
    assert run(seed=7)[0].first == run(seed=7)[0].first != run(seed=8)[0].first


def test_pairs_are_run_in_a_random_order_so_each_side_goes_first_about_half_the_time():
    result, _ = run(budget_s=200.0, design=Design(0.001, min_pairs=10, workers=2))
    share = result.first.count(BASELINE) / result.pairs
    assert result.pairs > 200 and 0.4 < share < 0.6
    assert len(result.round_s[BASELINE]) == len(result.round_s[CANDIDATE]) == result.pairs


@pytest.mark.parametrize("seed", range(4))
def test_every_worker_runs_the_steps_the_precursor_calibrated(seed):
    result, made = run(seed=seed, budget_s=5.0)
    precursor, *others = made[BASELINE]
    assert "steps_per_round" not in precursor.request
    assert {w.request["steps_per_round"] for w in others + made[CANDIDATE]} == {10}
    assert result.steps_per_round == {BASELINE: 10, CANDIDATE: 10}
    assert len(made[BASELINE]) == 1 + result.workers and len(made[CANDIDATE]) == result.workers


def test_workers_start_lane_by_lane_in_a_balanced_order():
    assert lockstep_ab.start_order(BASELINE, 4) == (
        (BASELINE, 0), (CANDIDATE, 0), (CANDIDATE, 1), (BASELINE, 1),
        (BASELINE, 2), (CANDIDATE, 2), (CANDIDATE, 3), (BASELINE, 3))
    assert lockstep_ab.start_order(CANDIDATE, 1) == ((CANDIDATE, 0), (BASELINE, 0))


def test_which_side_starts_first_is_drawn_per_run():
    orders = {run(seed=seed, budget_s=2.0)[0].start_order[0] for seed in range(12)}
    assert orders == {"baseline0", "candidate0"}


def test_pairs_are_kept_lane_by_lane_so_a_slow_worker_widens_the_ci():
    """Pair i is lane i % workers: a candidate worker 20% slow shows in its lane only,
    and the CI counts the lanes' spread (no verdict from one odd process)."""
    design = Design(0.03, min_pairs=10, workers=3, process_sd=0.0)
    result, _ = run(budget_s=30.0, design=design, lane_speeds=(1.0, 1.0, 0.8))
    logs = result.log_ratios
    assert np.mean(logs[2::3]) == pytest.approx(math.log(0.8), abs=0.03)
    assert abs(np.mean(logs[0::3])) < 0.03 and abs(np.mean(logs[1::3])) < 0.03
    assert result.high / result.low > 1.15
    steady, _ = run(budget_s=30.0, design=design)
    assert steady.high / steady.low < 1.05


def test_a_budget_too_short_to_decide_is_inconclusive():
    result, _ = run(0.1 / 0.985, budget_s=5.0, design=Design(0.03, min_pairs=10))
    assert result.verdict == sequential.INCONCLUSIVE


def test_the_idle_sides_cpu_use_between_its_rounds_is_measured():
    result, _ = run(design=dataclasses.replace(FAKE_DESIGN, workers=1))
    # 1 ms of CPU per gap of about one other round (~0.1 s + 0.01 s): ~0.01 cores.
    assert 0.003 < result.idle_cpu_share[BASELINE] < 0.03


@pytest.mark.parametrize("fail", ["start", "round"])
def test_a_failing_side_is_named_and_every_worker_is_stopped(fail):
    made = {BASELINE: [], CANDIDATE: []}
    with pytest.raises(ABError, match=r"the candidate side failed on mlp-.*B/bin/python|"
                                      r"the candidate side failed on mlp-.*code 1"):
        run(fail=fail, made=made)
    workers = made[BASELINE] + made[CANDIDATE]
    assert len(workers) >= 3 and all(w.killed for w in workers)
    assert made[BASELINE][0].closed  # the precursor: closed gracefully before the kill


def test_ctrl_c_while_workers_start_stops_every_worker():
    made = {BASELINE: [], CANDIDATE: []}
    with pytest.raises(KeyboardInterrupt):
        run(fail="interrupt", made=made)
    workers = made[BASELINE] + made[CANDIDATE]
    assert len(workers) == 3 and all(w.killed for w in workers)


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
    """The minimum detectable slowdown is called slower ~85-95% of the time by the
    sequential test (workers with offsets as large as the design allows for); half
    of it far less often."""
    rng = np.random.default_rng(7)
    sd, per_s, budget = 0.15, 4.0, 120.0
    design = Design(0.03)
    estimate = lockstep_ab.power(sd * rng.standard_normal(400), 100.0, budget, design)
    assert estimate.pairs == 480 and estimate.pair_sd == pytest.approx(sd, rel=0.1)

    lane = np.arange(480) % design.workers

    def detected(slowdown, tests=300):
        hits = 0
        for _ in range(tests):
            offsets = rng.normal(0, design.process_sd, (2, design.workers))
            logs = (math.log(1 - slowdown) + (offsets[1] - offsets[0])[lane]
                    + sd * rng.standard_normal(480))
            test = sequential.SequentialTest(design, budget)
            for i in range(480):
                if test.update(logs[:i + 1], (i + 1) / per_s):
                    break
            hits += test.verdict == sequential.SLOWER
        return hits / tests

    # A little under POWER: a test's CI takes the lanes' measured process term where it
    # exceeds the design's, which the estimate (from the design's) cannot foresee; well
    # within the factor of 1.5 the estimate is held to.
    assert 0.80 <= detected(estimate.min_detectable) <= 1.0
    assert detected(1.5 * estimate.min_detectable) >= 0.95
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


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts worker processes in /proc")
def test_a_real_a_a_runs_pairs_between_two_workers_and_leaves_none_behind():
    """Real worker processes (this interpreter on both sides: a precursor, one worker a
    side), a few seconds of pairs."""
    design = Design(0.03, min_pairs=5, looks=2, workers=1)
    result = lockstep_ab.run_workflow(SPEC, Side(BASELINE, sys.executable),
                                      Side(CANDIDATE, sys.executable), PROFILE, design, 2.0)
    assert result.pairs >= 5 and result.verdict in sequential.VERDICTS
    assert set(result.tf_versions.values()) == {__import__("tensorflow").__version__}
    assert all(share is not None and share < 0.5 for share in result.idle_cpu_share.values())
    assert 0.5 < result.ratio < 2.0
    assert _workers_alive() == []


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts worker processes in /proc")
def test_ctrl_c_during_the_pairs_stops_both_real_workers():
    def interrupt(pairs, test, elapsed):
        if pairs == 3:
            assert len(_workers_alive()) == 3  # the precursor and one worker a side
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lockstep_ab.run_workflow(SPEC, Side(BASELINE, sys.executable),
                                 Side(CANDIDATE, sys.executable), PROFILE,
                                 Design(0.03, workers=1), 60.0, on_pair=interrupt)
    assert _workers_alive() == []
