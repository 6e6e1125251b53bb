"""Tests for kbench.data.records: array validation and the Dataset record."""

from __future__ import annotations

import numpy as np
import pytest

from kbench.data import IMAGE_SHAPE, Dataset, DatasetError, validate_arrays
from kbench.testing import tiny_dataset


def _images(n: int, dtype=np.uint8) -> np.ndarray:
    return np.zeros((n, *IMAGE_SHAPE), dtype)


def _nan_images() -> np.ndarray:
    x = _images(4, np.float32)
    x[1, 2, 3] = np.nan
    x[2, 0, 0] = np.inf
    return x


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((5, 27, 28), np.uint8), np.zeros(5, int), r"x_train must have shape \(N, 28, 28\).*got \(5, 27, 28\)"),
    (np.zeros((5, 784), np.uint8), np.zeros(5, int), r"got \(5, 784\)"),
    (np.zeros((5, 28, 28, 3), np.uint8), np.zeros(5, int), r"got \(5, 28, 28, 3\)"),
    (np.full((2, 28, 28), "a"), np.zeros(2, int), r"integer or float dtype, got <U1"),
    (_images(5), np.zeros(4, int), r"x_train has 5 images but y_train has 4 labels"),
    (_images(0), np.zeros(0, int), r"x_train is empty"),
    (_images(5), np.zeros((5, 1), int), r"y_train must be 1-D .* got \(5, 1\)"),
    (_images(5), np.zeros(5, np.float32), r"y_train must have an integer dtype, got float32"),
    (_images(5), np.array([0, 1, 2, 10, 3]), r"got min 0 and max 10; the first bad label is 10 at index 3"),
    (_images(5), np.array([0, -1, 2, 3, 4]), r"got min -1 and max 4; the first bad label is -1 at index 1"),
    (_nan_images(), np.zeros(4, int), r"x_train has 2 non-finite values .* first is nan at index \(1, 2, 3\)"),
])
def test_validate_arrays_rejects_bad_inputs(x, y, match):
    with pytest.raises(DatasetError, match=match):
        validate_arrays(x, y)


def test_validate_arrays_names_the_split_and_respects_num_classes():
    with pytest.raises(ValueError, match=r"y_test labels must be in \[0, 10\)"):
        validate_arrays(_images(2), np.array([0, 10]), split="test")
    validate_arrays(_images(2), np.array([0, 10]), num_classes=11)


@pytest.mark.parametrize("x", [_images(3), _images(3, np.float64), np.zeros((3, 28, 28, 1), np.float32)])
def test_validate_arrays_accepts_well_formed_inputs(x):
    validate_arrays(x, np.array([0, 5, 9]))


def test_dataset_validates_both_splits_and_is_read_only():
    small = tiny_dataset(n_train=30, n_test=10)
    with pytest.raises(DatasetError, match=r"x_test must have shape .* got \(10, 28, 27\)"):
        Dataset("bad", small.x_train, small.y_train, np.zeros((10, 28, 27), np.uint8), small.y_test)
    with pytest.raises(DatasetError, match="Dataset name must be a non-empty str, got ''"):
        Dataset("", small.x_train, small.y_train, small.x_test, small.y_test)
    with pytest.raises(ValueError, match="read-only"):
        small.x_train[0, 0, 0] = 1

