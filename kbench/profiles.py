"""Benchmark profiles: how much measuring a benchmark session does, by name.

``--kbench-profile NAME`` or ``$KBENCH_PROFILE`` picks one; smoke is for CI,
default for a developer's machine, full for a sweep. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from kbench import _validate
from kbench.lockstep import ORDERS
from kbench.workflows import DATASETS

# The data every suite trains on: the 5,000 real MNIST digits bundled with kbench.
BUNDLED_DATASET = "mnist_5k"
# Where Fashion-MNIST is installed (e.g. the Debian package dataset-fashion-mnist),
# the default and full profiles also run the loops and prefetch suites on its
# 60,000 training images: a pipeline the size users have, not cached in memory.
FULL_DATASETS = (BUNDLED_DATASET, "fashion_mnist")


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much measuring a benchmark run does.

    The benchmark suites measure each comparison group in lockstep
    (:mod:`kbench.interleaved`): one round per variant per cycle, at least
    ``rounds`` cycles, then more until every ratio to the group's baseline is
    known to ``target_ci`` or ``group_s`` seconds of cycles have passed.

    Attributes:
        name: profile name.
        rounds: the fewest measured rounds per benchmark (cycles per group).
        steps_per_round: the fewest training steps in a round.
        min_round_s: rounds are lengthened (in steps, calibrated once per run)
            to last at least this long, so that per-round costs stay small
            against the round.
        warmup_rounds: unmeasured rounds after startup.
        lead_steps: untimed steps at the start of every round, before its
            clock starts (at most kbench.measure.LEAD_MAX_S of them): they
            drain what the input pipeline buffered while the round waited for
            its turn (kbench.measure.lead_steps).
        batch_sizes: batch sizes the throughput suites sweep.
        families: model families the suites cover.
        group_s: the most seconds of cycles a comparison group measures.
        target_ci: a group stops early once every ratio's 95% CI half-width
            is within this share of the ratio (a normal approximation over
            the cycles so far; the reported CI is the bootstrap's).
        max_cycles: the most cycles a group runs, whatever the time.
        order: the order of the variants within a cycle (kbench.lockstep.ORDERS).
        datasets: what the loops and prefetch suites train on, one comparison
            group per dataset (a dataset not available offline skips, saying
            how to get it).
    """

    name: str
    rounds: int
    steps_per_round: int
    min_round_s: float
    warmup_rounds: int
    batch_sizes: tuple[int, ...]
    families: tuple[str, ...]
    lead_steps: int = 0
    group_s: float = 20.0
    target_ci: float = 0.05
    max_cycles: int = 400
    order: str = "random"
    datasets: tuple[str, ...] = (BUNDLED_DATASET,)

    def __post_init__(self):
        for field, minimum in (("rounds", 2), ("steps_per_round", 1), ("warmup_rounds", 0),
                               ("lead_steps", 0), ("max_cycles", 2)):
            _validate.check_int(field, getattr(self, field), minimum=minimum)
        if self.max_cycles < self.rounds:
            raise ValueError(f"max_cycles ({self.max_cycles}) must be >= rounds ({self.rounds})")
        _validate.check_number("min_round_s", self.min_round_s, low=0)
        _validate.check_number("group_s", self.group_s, low=0)
        _validate.check_fraction("target_ci", self.target_ci)
        _validate.check_choice("order", self.order, ORDERS)
        if not isinstance(self.datasets, tuple) or not self.datasets:
            raise ValueError(f"datasets must be a non-empty tuple of dataset names, got "
                             f"{self.datasets!r}")
        for name in self.datasets:
            _validate.check_choice("datasets", name, DATASETS)


# Budgets on a 2-core CPU: smoke, the whole suite in <= 2 min (CI); default
# <= 10 min; full sweeps batch sizes and takes longer.
#
# Rounds are short because the noise here is fast. On this VM (MLP, batch 64,
# fit vs custom in lockstep, 70 s per setting) the per-cycle log-ratio spread
# was 0.15 with 0.1 s rounds, 0.16 with 0.25 s and 0.13 with 0.5 s: longer
# rounds barely average it out, so a CI narrows with the number of cycles,
# not with their length. To +-3% (about 100 cycles) two variants need ~22 s of
# 0.1 s rounds and ~75 s of 0.5 s ones. 0.1 s rounds still hold >= 20 steps of
# the models here, so a round's fixed costs (its gate and sync, ~1 ms) stay
# ~1% of it.
#
# The default profile's group_s is what fits its 24 groups (76 variants) in
# 10 min here; a +-5% CI for every MLP ratio took ~25 s a group (a 15 min
# session). --kbench-group-s sets it for one session.
PROFILES = MappingProxyType({
    "smoke": Profile("smoke", rounds=4, steps_per_round=10, min_round_s=0.05, warmup_rounds=1,
                     batch_sizes=(64,), families=("mlp",), lead_steps=4, group_s=1.5,
                     target_ci=0.10),
    "default": Profile("default", rounds=8, steps_per_round=10, min_round_s=0.1,
                       warmup_rounds=1, batch_sizes=(64,), families=("mlp", "cnn"),
                       lead_steps=8, group_s=9.0, target_ci=0.05, datasets=FULL_DATASETS),
    "full": Profile("full", rounds=20, steps_per_round=20, min_round_s=0.2, warmup_rounds=2,
                    batch_sizes=(64, 256, 1024), families=("mlp", "cnn"), lead_steps=16,
                    group_s=90.0, target_ci=0.02, datasets=FULL_DATASETS),
})
PROFILE_ENV = "KBENCH_PROFILE"
DEFAULT_PROFILE = "default"


def get_profile(name: str | None) -> Profile:
    """A profile by name; None means the default."""
    name = DEFAULT_PROFILE if name is None else name
    return PROFILES[_validate.check_choice("profile", name, tuple(PROFILES))]
