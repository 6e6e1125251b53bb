"""FLOPs of a training step and the device's achievable FLOP/s (the roofline probe).

MFU (model FLOPs utilisation) = achieved FLOP/s / probed FLOP/s: how much of
what the device can do a workflow uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from kbench.distribute import sync_devices

# Forward + backward of a dense or conv layer cost about three forward passes
# (the backward pass computes gradients for both inputs and weights).
TRAINING_FLOPS_PER_FORWARD_FLOP = 3
# The matmul probe: square float32 matrices of this size are large enough to
# reach a CPU's sustained matmul rate (2 GFLOP each), small enough to take
# ~40 ms each on a 2-core CPU at ~55 GFLOP/s.
MATMUL_PROBE_SIZE = 1024
MATMUL_PROBE_REPEATS = 8
MATMUL_PROBE_ROUNDS = 5


def _dense_flops(layer, input_shape) -> int:
    return 2 * int(input_shape[-1]) * layer.units


def _conv_flops(layer, input_shape) -> int:
    out = layer.compute_output_shape((1, *input_shape[1:]))
    kh, kw = layer.kernel_size
    return 2 * kh * kw * int(input_shape[-1]) * layer.filters * int(np.prod(out[1:-1]))


_LAYER_FLOPS = {keras.layers.Dense: _dense_flops, keras.layers.Conv2D: _conv_flops}


def forward_flops_per_sample(model: keras.Model, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds x2 of the model's Dense and Conv2D layers for one example.

    Activations, pooling, dropout and bias adds are ignored: they are below 1%
    of the total for kbench's models.

    Args:
        model: a built model.
        input_shape: one example's shape, without the batch axis.
    """
    total = 0
    shape = (1, *input_shape)
    for layer in _flat_layers(model):
        counter = next((f for cls, f in _LAYER_FLOPS.items() if isinstance(layer, cls)), None)
        if counter is not None:
            total += counter(layer, shape)
        shape = layer.compute_output_shape(shape)
    return total


def _flat_layers(model: keras.Model) -> list:
    """Layers in call order, for Sequential, Functional and kbench's subclassed model."""
    return list(getattr(model, "stack", None) or
                [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)])


def training_flops_per_sample(model: keras.Model, input_shape: tuple[int, ...]) -> int:
    """Approximate FLOPs of one training step per example (forward + backward)."""
    return TRAINING_FLOPS_PER_FORWARD_FLOP * forward_flops_per_sample(model, input_shape)


def probe_matmul_flops(device: str = "/CPU:0", *, size: int = MATMUL_PROBE_SIZE,
                       repeats: int = MATMUL_PROBE_REPEATS, rounds: int = MATMUL_PROBE_ROUNDS,
                       timer: Callable[[], float] = time.perf_counter) -> float:
    """The device's achievable float32 matmul rate in FLOP/s (best of ``rounds``)."""
    with tf.device(device):
        a = tf.random.stateless_normal((size, size), seed=(1, 2))
        b = tf.random.stateless_normal((size, size), seed=(3, 4))

        @tf.function
        def chain(x):
            for _ in range(repeats):
                x = tf.linalg.matmul(x, b) * (1.0 / size)
            return tf.reduce_sum(x)

        float(chain(a))  # trace and warm up
        best = float("inf")
        for _ in range(rounds):
            sync_devices()
            start = timer()
            float(chain(a))
            sync_devices()
            best = min(best, timer() - start)
    return 2.0 * size**3 * repeats / best
