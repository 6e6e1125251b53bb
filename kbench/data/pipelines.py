"""tf.data input pipelines over a Dataset's arrays; their knobs are the fields of PipelineOptions.

The pipeline casts and scales images (optionally adding real per-sample CPU
work, ``preprocess_cost``), caches, repeats, shuffles, batches and prefetches
as the options say; tuning knobs never change which examples come out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from kbench._validate import check_bool, check_int, check_number, check_positive_int, is_int
from kbench.data.records import (
    IMAGE_CHANNELS,
    IMAGE_SHAPE,
    NUM_CLASSES,
    PIXEL_MAX,
    Dataset,
    validate_arrays,
)

__all__ = ["AUTOTUNE", "ArrayInput", "PipelineOptions", "make_array_input", "make_pipeline",
           "make_splits", "to_arrays", "validation_holdout"]

# The value of prefetch / map_parallelism that hands the choice to tf.data.AUTOTUNE.
AUTOTUNE = "autotune"


def _check_tuning(field: str, value: Any) -> None:
    """Raise ValueError unless value is None, AUTOTUNE or a positive int."""
    if value is None or value == AUTOTUNE:
        return
    if not is_int(value) or value < 1:
        raise ValueError(f"{field} must be None, {AUTOTUNE!r} or a positive int, got {value!r}")


@dataclass(frozen=True)
class PipelineOptions:
    """Knobs of make_pipeline; validated on construction.

    preprocess_cost adds that many iterations of a 28x28 matmul + sin per
    sample inside the map function: real CPU work that leaves values unchanged.

    repeat makes the dataset endless, repeating *before* the shuffle: the
    shuffle buffer then fills once and epochs blur into one stream with no
    boundary stalls, which is what a throughput benchmark wants (a repeat
    after the shuffle refills the whole buffer at every epoch start).
    """

    batch_size: int = 64
    normalize: bool = True
    channel_axis: bool = False
    shuffle: bool = True
    shuffle_seed: int = 0
    shuffle_buffer: int | None = None
    cache: bool = False
    prefetch: int | str | None = None
    map_parallelism: int | str | None = None
    preprocess_cost: int = 0
    drop_remainder: bool = False
    repeat: bool = False
    one_hot: bool = False

    def __post_init__(self) -> None:
        check_positive_int("batch_size", self.batch_size)
        for field in ("normalize", "channel_axis", "shuffle", "cache", "drop_remainder", "repeat",
                      "one_hot"):
            check_bool(field, getattr(self, field))
        check_int("shuffle_seed", self.shuffle_seed, minimum=0)
        if self.shuffle_buffer is not None:
            check_positive_int("shuffle_buffer", self.shuffle_buffer)
        _check_tuning("prefetch", self.prefetch)
        _check_tuning("map_parallelism", self.map_parallelism)
        check_int("preprocess_cost", self.preprocess_cost, minimum=0)


def _tf_tuning(value: int | str | None) -> int | None:
    return tf.data.AUTOTUNE if value == AUTOTUNE else value


def _image_shape(channel_axis: bool) -> tuple[int, ...]:
    return (*IMAGE_SHAPE, IMAGE_CHANNELS) if channel_axis else IMAGE_SHAPE


def _burn_cpu(image: tf.Tensor, cost: int) -> tf.Tensor:
    """Return exactly 0.0 after `cost` iterations of a 28x28 matmul + sin seeded by image.

    The work depends on the image and ends in min(|state|, 0), which is 0 for
    any finite state (sin keeps it in [-1, 1]) but which no graph optimiser
    can prove constant, so it is neither folded nor pruned. The +1 offset
    keeps the state away from zero, so no iteration runs on denormals and
    every iteration costs the same.
    """
    matrix = tf.reshape(image, IMAGE_SHAPE)

    def body(i, state):
        return i + 1, tf.sin(tf.matmul(state, matrix) + 1.0)

    _, state = tf.while_loop(lambda i, _: i < cost, body, (tf.constant(0), matrix))
    return tf.minimum(tf.reduce_sum(tf.abs(state)), 0.0)


def _preprocess_fn(
    options: PipelineOptions,
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """Build the per-sample map function: cast, scale, reshape, optional CPU cost."""
    divisor = PIXEL_MAX if options.normalize else 1.0
    shape = _image_shape(options.channel_axis)

    def preprocess(image, label):
        image = tf.reshape(tf.cast(image, tf.float32) / divisor, shape)
        if options.preprocess_cost:
            image = image + _burn_cpu(image, options.preprocess_cost)
        label = tf.cast(label, tf.int32)
        return image, tf.one_hot(label, NUM_CLASSES) if options.one_hot else label

    return preprocess


def make_pipeline(
    x: Any, y: Any, options: PipelineOptions, *, split: str = "train"
) -> tf.data.Dataset:
    """Build the tf.data pipeline: map -> cache -> [repeat] -> [shuffle] (cached) or
    [repeat] -> [shuffle] -> map, then batch -> [prefetch].

    Args:
        x: images (N, 28, 28) or (N, 28, 28, 1); normalisation divides by 255.
        y: integer labels (N,).
        options: the PipelineOptions.
        split: split name used in validation messages.

    Returns:
        A dataset of (float32 images (B, 28, 28[, 1]), int32 labels (B,)), or
        float32 one-hot labels (B, 10) with ``options.one_hot``.
    """
    validate_arrays(x, y, split=split)
    x, y = np.asarray(x), np.asarray(y)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    parallelism = _tf_tuning(options.map_parallelism)
    map_kwargs = {}
    if parallelism is not None:
        map_kwargs = {"num_parallel_calls": parallelism, "deterministic": True}
    preprocess = _preprocess_fn(options)
    # Cached: preprocess once, then shuffle the cache every epoch. Not cached:
    # shuffle the raw records, then preprocess as they are consumed, so the
    # per-sample cost is spread over the steps (a full-size shuffle buffer
    # after the map would pay a whole epoch's cost in a burst at its start).
    # The shuffle order depends only on the seed and the record count, so it
    # is the same either way.
    if options.cache:
        ds = ds.map(preprocess, **map_kwargs).cache()
    if options.repeat:
        ds = ds.repeat()
    if options.shuffle:
        buffer = options.shuffle_buffer or len(x)
        ds = ds.shuffle(buffer, seed=options.shuffle_seed, reshuffle_each_iteration=True)
    if not options.cache:
        ds = ds.map(preprocess, **map_kwargs)
    ds = ds.batch(options.batch_size, drop_remainder=options.drop_remainder)
    if options.prefetch is not None:
        ds = ds.prefetch(_tf_tuning(options.prefetch))
    return ds


def make_splits(
    dataset: Dataset, options: PipelineOptions
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Return (train pipeline with options, test pipeline with the same options unshuffled)."""
    train = make_pipeline(dataset.x_train, dataset.y_train, options, split="train")
    test_options = dataclasses.replace(options, shuffle=False)
    test = make_pipeline(dataset.x_test, dataset.y_test, test_options, split="test")
    return train, test


def validation_holdout(x: Any, y: Any, fraction: float) -> tuple[Any, Any, Any, Any]:
    """Split off the last ``fraction`` of (x, y) as ``fit(validation_split=fraction)`` does:
    the first ceil(n * (1 - fraction)) records train, the rest validate; no shuffle first.

    Returns:
        (x_train, y_train, x_val, y_val).

    Raises:
        ValueError: quoting ``fraction`` unless it is in (0, 1), or when it
            leaves either part empty.
    """
    check_number("validation_split", fraction, low=0, high=1, low_open=True, high_open=True)
    n = len(x)
    split_at = int(math.ceil(n * (1.0 - fraction)))  # keras.src.trainers.data_adapters
    if not 0 < split_at < n:
        raise ValueError(f"validation_split={fraction!r} of {n} records leaves "
                         f"{split_at} to train on and {n - split_at} to validate on")
    return x[:split_at], y[:split_at], x[split_at:], y[split_at:]


@dataclass(frozen=True)
class ArrayInput:
    """NumPy input for ``model.fit``: the arrays, preprocessed as make_pipeline would,
    and how fit batches them (fit shuffles arrays itself each epoch when ``shuffle``)."""

    x: np.ndarray
    y: np.ndarray
    batch_size: int
    shuffle: bool

    def __len__(self) -> int:
        return len(self.x)

    def whole_epochs(self, steps: int) -> "ArrayInput":
        """These arrays cut to a whole number of epochs of ``steps`` batches (or, when
        they hold fewer, repeated to one), for ``fit(steps_per_epoch=steps)``.

        Keras starts a new pass over arrays only at an epoch's end, and only when
        the last pass ended exactly there; a pass that runs out inside an epoch
        stops that epoch short. Benchmarks time epochs of a fixed number of
        steps, so their passes must be a whole number of epochs.

        Raises:
            ValueError: quoting ``steps`` unless it is a positive int.
        """
        check_int("steps", steps, minimum=1)
        per_epoch = steps * self.batch_size
        n = max(1, len(self) // per_epoch) * per_epoch
        if n <= len(self):
            return dataclasses.replace(self, x=self.x[:n], y=self.y[:n])  # views, no copy
        index = np.arange(n) % len(self)
        return dataclasses.replace(self, x=self.x[index], y=self.y[index])


def make_array_input(x: Any, y: Any, options: PipelineOptions, *,
                     split: str = "train") -> ArrayInput:
    """The arrays ``fit`` takes in place of make_pipeline's dataset: the same images and
    labels (normalised, shaped, one-hot as the options say), for fit to batch and shuffle.

    The options' tf.data knobs (cache, prefetch, map parallelism, repeat,
    shuffle buffer and seed, preprocess cost) have no array counterpart; a
    set one is refused rather than silently ignored.

    Raises:
        ValueError: naming the tf.data option that was set.
    """
    validate_arrays(x, y, split=split)
    defaults = PipelineOptions()
    for field in ("cache", "prefetch", "map_parallelism", "repeat", "shuffle_buffer",
                  "preprocess_cost", "drop_remainder"):
        if getattr(options, field) != getattr(defaults, field):
            raise ValueError(f"NumPy input to fit has no {field}: got {field}="
                             f"{getattr(options, field)!r}; use input_kind='tfdata'")
    images = _to_float_images(np.asarray(x), options.normalize, options.channel_axis)
    labels = np.asarray(y).astype(np.int32)
    if options.one_hot:
        labels = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    return ArrayInput(images, labels, options.batch_size, options.shuffle)


def _to_float_images(x: np.ndarray, normalize: bool, channel_axis: bool) -> np.ndarray:
    images = x.astype(np.float32) / np.float32(PIXEL_MAX if normalize else 1.0)
    return images.reshape(len(x), *_image_shape(channel_axis))


def to_arrays(
    dataset: Dataset, *, normalize: bool = True, channel_axis: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test): float32 images, int32 labels.

    Images are scaled like make_pipeline (divided by 255 when normalize) and
    shaped (N, 28, 28), or (N, 28, 28, 1) with channel_axis.
    """
    return (
        _to_float_images(dataset.x_train, normalize, channel_axis),
        dataset.y_train.astype(np.int32),
        _to_float_images(dataset.x_test, normalize, channel_axis),
        dataset.y_test.astype(np.int32),
    )
