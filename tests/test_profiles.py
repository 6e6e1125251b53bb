"""Tests for kbench.profiles: the benchmark profiles and their validation."""

import re

import pytest

from kbench import lockstep, profiles


def test_profiles_fit_their_purpose():
    smoke, default, full = (profiles.get_profile(n) for n in ("smoke", "default", "full"))
    assert smoke.rounds * smoke.min_round_s < default.rounds * default.min_round_s
    assert default.rounds >= 5, "Mann-Whitney needs >= 5 rounds a side to reach p < 0.01"
    assert full.batch_sizes == (64, 256, 1024)
    assert profiles.get_profile(None) == default


@pytest.mark.parametrize("bad, message", [
    ("fast", "profile must be one of .*got 'fast'"),
])
def test_unknown_profile_is_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        profiles.get_profile(bad)


def test_profiles_measure_groups_within_their_budget():
    smoke, default, full = (profiles.get_profile(n) for n in ("smoke", "default", "full"))
    assert smoke.group_s < default.group_s < full.group_s
    assert full.target_ci < default.target_ci < smoke.target_ci
    for profile in (smoke, default, full):
        assert profile.rounds <= profile.max_cycles and profile.order in lockstep.ORDERS


FIELDS = dict(name="x", rounds=3, steps_per_round=3, min_round_s=0.1, warmup_rounds=1,
              batch_sizes=(64,), families=("mlp",))


@pytest.mark.parametrize("field, value, message", [
    ("rounds", 0, "rounds must be an int >= 2, got 0"),
    ("rounds", 1, "rounds must be an int >= 2, got 1"),  # no spread, no paired CI from one
    ("rounds", 2.0, "rounds must be an int >= 2, got 2.0"),
    ("steps_per_round", -1, "steps_per_round must be a positive int, got -1"),
    ("warmup_rounds", -1, "warmup_rounds must be a non-negative int, got -1"),
    ("min_round_s", -0.5, "min_round_s must be a finite number >= 0, got -0.5"),
    ("min_round_s", float("inf"), "min_round_s must be a finite number >= 0, got inf"),
    ("group_s", -1.0, "group_s must be a finite number >= 0, got -1.0"),
    ("group_s", float("nan"), "group_s must be a finite number >= 0, got nan"),
    ("target_ci", 0, "target_ci must be a number strictly between 0 and 1, got 0"),
    ("target_ci", 1, "target_ci must be a number strictly between 0 and 1, got 1"),
    ("target_ci", "5%", "target_ci must be a number strictly between 0 and 1, got '5%'"),
    ("order", "abab", "order must be one of ('abba', 'random'), got 'abab'"),
    ("order", None, "order must be one of ('abba', 'random'), got None"),
    ("max_cycles", 1, "max_cycles must be an int >= 2, got 1"),
    ("max_cycles", 2, "max_cycles (2) must be >= rounds (3)"),
    ("datasets", (), "datasets must be a non-empty tuple of dataset names, got ()"),
    ("datasets", "mnist_5k", "datasets must be a non-empty tuple of dataset names, got "
                             "'mnist_5k'"),
    ("datasets", ("mnist_5k", "cifar10"), "datasets must be one of ('mnist_5k', 'mnist', "
                                          "'fashion_mnist', 'synthetic'), got 'cifar10'"),
])
def test_profile_validates_its_fields(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        profiles.Profile(**{**FIELDS, field: value})


def test_profile_accepts_the_smallest_valid_values():
    profile = profiles.Profile(**{**FIELDS, "rounds": 2, "max_cycles": 2, "group_s": 0.0,
                                  "order": "abba", "target_ci": 0.001})
    assert (profile.rounds, profile.max_cycles, profile.order) == (2, 2, "abba")
