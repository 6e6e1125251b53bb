"""The inputs benchmarks feed: endless training pipelines, cached compute-only batches,
and input-only iteration with its own round calibration."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import tensorflow as tf

from kbench import data as kdata
from kbench import training
from kbench.measure import calibrated_steps
from kbench.profiles import Profile
from kbench.workflows import WorkflowSpec


def training_input(spec: WorkflowSpec, dataset: kdata.Dataset | None = None,
                   **pipeline_overrides) -> tf.data.Dataset:
    """The spec's training pipeline as a benchmark feeds it: endless, full batches.

    Repeated before the shuffle, so no round pays an epoch boundary's shuffle
    buffer refill and every batch has ``batch_size`` examples.
    """
    dataset = dataset if dataset is not None else kdata.load_dataset(spec.dataset, seed=spec.seed)
    options = training.pipeline_options(spec, repeat=True, drop_remainder=True,
                                        **pipeline_overrides)
    return kdata.make_pipeline(dataset.x_train, dataset.y_train, options)


def compute_only_input(train_data: tf.data.Dataset, steps: int) -> tf.data.Dataset:
    """``steps`` batches of ``train_data`` cached in memory and repeated: no input cost.

    The first pass (the warm-up round) fills the cache.
    """
    return train_data.take(steps).cache().repeat()


def consume(iterator: Iterator, steps: int) -> None:
    """Pull ``steps`` batches from an input iterator (input-only timing)."""
    for _ in range(steps):
        next(iterator)


def calibrate_input(iterator: Iterator, profile: Profile,
                    timer: Callable[[], float] = time.perf_counter) -> int:
    """Warm an input iterator up, then the steps per round that last ``profile.min_round_s``."""
    consume(iterator, profile.steps_per_round)  # warm-up: buffers fill, functions trace
    start = timer()
    consume(iterator, profile.steps_per_round)
    return calibrated_steps((timer() - start) / profile.steps_per_round, profile)
