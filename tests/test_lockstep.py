"""Tests for kbench.lockstep: balanced orders, one round per variant per cycle, budgets."""

import itertools

import pytest

from kbench import lockstep, telemetry
from kbench.lockstep import LockstepError


class FakeRunner:
    """Logs its calls into a shared list; each round 'takes' ``seconds``."""

    def __init__(self, name, log, seconds=1.0, fail_at=None):
        self.name, self.log, self.seconds, self.fail_at = name, log, seconds, fail_at
        self.rounds = 0

    def warm_up(self):
        self.log.append((self.name, "warm-up"))

    def next_round(self):
        self.rounds += 1
        if self.rounds == self.fail_at:
            raise RuntimeError("out of memory")
        self.log.append((self.name, self.rounds))
        return self.seconds


def still_watch():
    ticks = itertools.count()
    return telemetry.Stopwatch(clock=lambda: float(next(ticks)), process_clock=lambda: 0.0,
                               cpu_times=lambda: None)


@pytest.mark.parametrize("n, cycle, expected", [(2, 0, [0, 1]), (2, 1, [1, 0]), (3, 1, [2, 1, 0])])
def test_abba_runs_forward_then_backward(n, cycle, expected):
    assert lockstep.cycle_order(n, cycle) == expected


def test_random_order_is_a_seeded_permutation_per_cycle():
    import random
    orders = [lockstep.cycle_order(4, c, order="random", rng=random.Random(1)) for c in range(3)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    again = [lockstep.cycle_order(4, c, order="random", rng=random.Random(1)) for c in range(3)]
    assert orders == again


def test_every_variant_warms_up_first_then_runs_once_per_cycle_in_abba_order():
    log = []
    runners = {"fit": FakeRunner("fit", log, 2.0), "custom": FakeRunner("custom", log, 1.0)}
    rounds = lockstep.run_lockstep(runners, 4, stopwatch=still_watch())
    assert log[:2] == [("fit", "warm-up"), ("custom", "warm-up")]
    assert [name for name, _ in log[2:]] == ["fit", "custom", "custom", "fit"] * 2
    assert rounds.cycles == 4 and rounds.orders == ((0, 1), (1, 0), (0, 1), (1, 0))
    assert rounds.seconds == {"fit": (2.0,) * 4, "custom": (1.0,) * 4}
    assert all(len(v) == 4 and v[0].wall_s == 1.0 for v in rounds.noise.values())


def test_a_budget_stops_after_the_cycle_that_spends_it_but_never_before_two():
    log = []
    clock = itertools.count(0.0, 10.0)  # every clock read: 10 s later
    runners = {"a": FakeRunner("a", log), "b": FakeRunner("b", log)}
    rounds = lockstep.run_lockstep(runners, 100, budget_s=1.0, stopwatch=still_watch(),
                                   clock=lambda: next(clock))
    assert rounds.cycles == 2


def test_a_budget_waits_for_the_fewest_cycles_asked_for():
    clock = itertools.count(0.0, 10.0)
    runners = {"a": FakeRunner("a", []), "b": FakeRunner("b", [])}
    rounds = lockstep.run_lockstep(runners, 100, budget_s=1.0, min_cycles=5,
                                   stopwatch=still_watch(), clock=lambda: next(clock))
    assert rounds.cycles == 5


def test_done_is_asked_after_each_cycle_from_the_fewest_on_and_stops_the_group():
    seen = []

    def done(seconds):
        seen.append(len(seconds["a"]))
        return len(seconds["a"]) == 6

    runners = {"a": FakeRunner("a", []), "b": FakeRunner("b", [])}
    rounds = lockstep.run_lockstep(runners, 100, min_cycles=4, done=done, stopwatch=still_watch())
    assert rounds.cycles == 6 and seen == [4, 5, 6]


def test_the_fewest_cycles_cannot_exceed_the_most():
    with pytest.raises(LockstepError, match=r"min_cycles \(5\) exceeds cycles \(3\)"):
        lockstep.run_lockstep({"a": FakeRunner("a", [])}, 3, min_cycles=5)


def test_a_failing_variant_is_named_with_its_round():
    log = []
    runners = {"a": FakeRunner("a", log), "b": FakeRunner("b", log, fail_at=2)}
    with pytest.raises(LockstepError, match=r"variant 'b' failed in its round 2: "
                                            r"RuntimeError: out of memory"):
        lockstep.run_lockstep(runners, 3, stopwatch=still_watch())


@pytest.mark.parametrize("kwargs, quoted", [({"cycles": 0}, "cycles must be a positive int, got 0"),
                                            ({"order": "abab"}, "'abab'"),
                                            ({"budget_s": -1}, "budget_s")])
def test_bad_arguments_are_refused_quoting_them(kwargs, quoted):
    args = {"cycles": 2, **kwargs}
    with pytest.raises((LockstepError, ValueError), match=quoted):
        lockstep.run_lockstep({"a": FakeRunner("a", [])}, stopwatch=still_watch(), **args)
    with pytest.raises(LockstepError, match="at least one runner"):
        lockstep.run_lockstep({}, 2)
