"""The Dataset record: a validated, read-only train/test split of MNIST-shaped images.

Every source in kbench.data returns one, and every pipeline reads one, so the
shape of the data (28x28 grayscale, 10 classes, uint8 pixels) is said here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kbench._validate import check_str

__all__ = ["IMAGE_CHANNELS", "IMAGE_SHAPE", "NUM_CLASSES", "PIXEL_MAX", "Dataset", "DatasetError",
           "validate_arrays"]


class DatasetError(ValueError):
    """A dataset is missing, malformed or cannot be obtained."""


# MNIST and Fashion-MNIST: ten classes of 28x28 grayscale (one-channel) images.
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
IMAGE_CHANNELS = 1
# uint8 pixels span 0..255; normalisation divides by this to land in [0, 1].
PIXEL_MAX = 255.0


def _check_image_shape(x: np.ndarray, split: str) -> None:
    ok_3d = x.ndim == 3 and x.shape[1:] == IMAGE_SHAPE
    ok_4d = x.ndim == 4 and x.shape[1:] == (*IMAGE_SHAPE, IMAGE_CHANNELS)
    if not (ok_3d or ok_4d):
        raise DatasetError(
            f"x_{split} must have shape (N, 28, 28) or (N, 28, 28, 1), got {x.shape}"
        )
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DatasetError(f"x_{split} must have an integer or float dtype, got {x.dtype}")


def _check_finite(x: np.ndarray, split: str) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = ~np.isfinite(x)
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), x.shape))
        raise DatasetError(
            f"x_{split} has {count} non-finite values (NaN or inf); the first is "
            f"{x[first]} at index {first}"
        )


def _check_labels(y: np.ndarray, split: str, num_classes: int) -> None:
    if y.ndim != 1:
        raise DatasetError(f"y_{split} must be 1-D with shape (N,), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"y_{split} must have an integer dtype, got {y.dtype}")
    if y.size == 0:
        return
    low, high = y.min(), y.max()
    if low < 0 or high >= num_classes:
        first = int(np.argmax((y < 0) | (y >= num_classes)))
        raise DatasetError(
            f"y_{split} labels must be in [0, {num_classes}), got min {low} and max "
            f"{high}; the first bad label is {y[first]} at index {first}"
        )


def validate_arrays(
    x: Any, y: Any, *, split: str = "train", num_classes: int = NUM_CLASSES
) -> None:
    """Raise DatasetError (a ValueError) unless x, y are a well-formed image split.

    Args:
        x: images, (N, 28, 28) or (N, 28, 28, 1), integer or finite float.
        y: integer labels (N,) in [0, num_classes).
        split: name used in messages ("train" -> "x_train", "y_train").
        num_classes: number of classes labels must index.
    """
    x, y = np.asarray(x), np.asarray(y)
    _check_image_shape(x, split)
    if y.ndim == 1 and len(x) != len(y):
        raise DatasetError(f"x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
    if len(x) == 0:
        raise DatasetError(f"x_{split} is empty (0 images)")
    _check_labels(y, split, num_classes)
    _check_finite(x, split)


def _read_only(array: Any) -> np.ndarray:
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """A named train/test split of MNIST-shaped images, validated on construction.

    Arrays are stored as read-only views so the record stays immutable.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        check_str("Dataset name", self.name, error=DatasetError)
        for field in ("x_train", "y_train", "x_test", "y_test"):
            object.__setattr__(self, field, _read_only(getattr(self, field)))
        validate_arrays(self.x_train, self.y_train, split="train")
        validate_arrays(self.x_test, self.y_test, split="test")
