"""Tests for kbench.profiles: the benchmark profiles and their validation."""

import pytest

from kbench import profiles


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


@pytest.mark.parametrize("field, value, message", [
    ("rounds", 0, "rounds must be a positive int, got 0"),
    ("steps_per_round", -1, "steps_per_round must be a positive int, got -1"),
    ("warmup_rounds", -1, "warmup_rounds must be a non-negative int, got -1"),
    ("rounds", 2.0, "rounds must be a positive int, got 2.0"),
    ("min_round_s", -0.5, "min_round_s must be a finite number >= 0, got -0.5"),
    ("min_round_s", float("inf"), "min_round_s must be a finite number >= 0, got inf"),
])
def test_profile_validates_its_fields(field, value, message):
    fields = dict(name="x", rounds=3, steps_per_round=3, min_round_s=0.1, warmup_rounds=1,
                  batch_sizes=(64,), families=("mlp",))
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        profiles.Profile(**fields)
