"""Benchmark profiles: how much measuring a benchmark session does, by name.

``--kbench-profile NAME`` or ``$KBENCH_PROFILE`` picks one; smoke is for CI,
default for a developer's machine, full for a sweep. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from kbench import _validate


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much measuring a benchmark run does.

    Attributes:
        name: profile name.
        rounds: measured rounds per benchmark (the spread comes from these).
        steps_per_round: the fewest training steps in a round.
        min_round_s: rounds are lengthened (in steps, calibrated once per run)
            to last at least this long, so that clock and scheduler jitter and
            per-round costs stay small against the round.
        warmup_rounds: unmeasured rounds after startup.
        batch_sizes: batch sizes the throughput suites sweep.
        families: model families the suites cover.
    """

    name: str
    rounds: int
    steps_per_round: int
    min_round_s: float
    warmup_rounds: int
    batch_sizes: tuple[int, ...]
    families: tuple[str, ...]

    def __post_init__(self):
        for field, minimum in (("rounds", 1), ("steps_per_round", 1), ("warmup_rounds", 0)):
            _validate.check_int(field, getattr(self, field), minimum=minimum)
        _validate.check_number("min_round_s", self.min_round_s, low=0)


# Budgets on a 2-core CPU: smoke, the whole suite in <= 2 min (CI); default
# <= 10 min; full sweeps batch sizes and takes longer. Default rounds last
# >= 0.5 s: on this VM, 0.1 s rounds of the MLP showed a 10% spread from
# scheduler jitter alone.
PROFILES = MappingProxyType({
    "smoke": Profile("smoke", rounds=3, steps_per_round=10, min_round_s=0.1, warmup_rounds=1,
                     batch_sizes=(64,), families=("mlp",)),
    "default": Profile("default", rounds=7, steps_per_round=20, min_round_s=0.5,
                       warmup_rounds=1, batch_sizes=(64,), families=("mlp", "cnn")),
    "full": Profile("full", rounds=15, steps_per_round=40, min_round_s=1.0, warmup_rounds=2,
                    batch_sizes=(64, 256, 1024), families=("mlp", "cnn")),
})
PROFILE_ENV = "KBENCH_PROFILE"
DEFAULT_PROFILE = "default"


def get_profile(name: str | None) -> Profile:
    """A profile by name; None means the default."""
    name = DEFAULT_PROFILE if name is None else name
    return PROFILES[_validate.check_choice("profile", name, tuple(PROFILES))]
