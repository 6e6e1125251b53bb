"""The synthetic dataset: deterministic, learnable MNIST-shaped data, made in memory.

Each class is a coarse random prototype image; samples are the prototype plus
heavy per-pixel noise, so models learn it fast but not trivially, and no file
or network is needed.
"""

from __future__ import annotations

import numpy as np

from kbench._validate import check_int
from kbench.data.records import IMAGE_SHAPE, NUM_CLASSES, PIXEL_MAX, Dataset, DatasetError

__all__ = ["SYNTHETIC_NOISE_STD", "SYNTHETIC_TEST_SIZE", "SYNTHETIC_TRAIN_SIZE", "make_synthetic"]

# Same split sizes as mnist_5k, so the two are interchangeable in workflows.
SYNTHETIC_TRAIN_SIZE = 4000
SYNTHETIC_TEST_SIZE = 1000
# Class prototypes are random GRID x GRID blocks upsampled to 28x28, giving
# coarse spatial structure that both MLPs and CNNs can pick up.
_SYNTHETIC_GRID = 7
# Per-pixel Gaussian noise (uint8 units) added to the prototype, then clipped.
# Measured on seeds 0-2: a Dense(64) MLP with Adam reaches 99.7-100% test
# accuracy after one epoch at batch 64 (at 260 it falls to 89%, at 400 to
# 46%), while nearest-centroid scores 100%. Learnable fast, but still noisy.
SYNTHETIC_NOISE_STD = 200.0


def _synthetic_split(
    prototypes: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n balanced, shuffled samples: class prototype + noise, clipped to uint8."""
    labels = rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.uint8)
    noise = rng.normal(0.0, SYNTHETIC_NOISE_STD, size=(n, *IMAGE_SHAPE))
    images = np.clip(prototypes[labels] + noise, 0, PIXEL_MAX).round().astype(np.uint8)
    return images, labels


def make_synthetic(n_train: int = SYNTHETIC_TRAIN_SIZE, n_test: int = SYNTHETIC_TEST_SIZE,
                   seed: int = 0) -> Dataset:
    """Generate the deterministic, learnable synthetic dataset.

    Args:
        n_train, n_test: records in each split (positive ints).
        seed: a non-negative int; the same seed gives the same arrays.
    """
    check_int("seed", seed, minimum=0, error=DatasetError)
    # Independent streams: changing n_train leaves prototypes and the test set unchanged.
    proto_seq, train_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
    upsample = IMAGE_SHAPE[0] // _SYNTHETIC_GRID
    coarse_shape = (NUM_CLASSES, _SYNTHETIC_GRID, _SYNTHETIC_GRID)
    coarse = np.random.default_rng(proto_seq).uniform(0, PIXEL_MAX, coarse_shape)
    prototypes = np.kron(coarse, np.ones((1, upsample, upsample)))
    x_train, y_train = _synthetic_split(prototypes, n_train, np.random.default_rng(train_seq))
    x_test, y_test = _synthetic_split(prototypes, n_test, np.random.default_rng(test_seq))
    return Dataset("synthetic", x_train, y_train, x_test, y_test)

