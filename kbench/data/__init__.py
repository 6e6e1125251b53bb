"""Datasets (IDX files, Keras loaders, bundled mnist-5k, synthetic) and tf.data pipelines.

Every dataset is a validated, frozen :class:`Dataset` of uint8 (N, 28, 28)
images and integer labels; :func:`make_pipeline` turns arrays into a
``tf.data`` input pipeline whose knobs are the fields of :class:`PipelineOptions`.

One module per concern; the names below are the package's API:

    records    the Dataset record, its validation, the shape of MNIST-family data
    idx        IDX files and folders of the four MNIST IDX files, how to get them
    synthetic  the generated, learnable synthetic dataset
    sources    where each dataset comes from (one table), load_dataset, local_source
    checksums  the published checksums, dataset_status (where a dataset would load from,
               its files checked against them)
    pipelines  PipelineOptions, make_pipeline, make_splits, to_arrays

The pipelines' names are imported on first use, so that loading or checking
data (``kbench data``) does not import TensorFlow.
"""

import importlib

from kbench.data.idx import (
    IDX_FILES,
    KBENCH_DATA_DIR_ENV,
    KERAS_DATASETS,
    load_idx_folder,
    offline_hint,
    read_idx,
    save_idx_folder,
    write_idx,
)
from kbench.data.records import (
    IMAGE_CHANNELS,
    IMAGE_SHAPE,
    NUM_CLASSES,
    PIXEL_MAX,
    Dataset,
    DatasetError,
    validate_arrays,
)
from kbench.data.checksums import DataStatus, dataset_status
from kbench.data.sources import DOWNLOAD_TIMEOUT_S, DataSource, load_dataset, local_source
from kbench.data.synthetic import SYNTHETIC_NOISE_STD, SYNTHETIC_TEST_SIZE, SYNTHETIC_TRAIN_SIZE

# Names of kbench.data.pipelines (which imports TensorFlow), imported on first use.
_PIPELINE_NAMES = ("AUTOTUNE", "PipelineOptions", "make_pipeline", "make_splits", "to_arrays")

__all__ = [
    "AUTOTUNE",
    "DOWNLOAD_TIMEOUT_S",
    "DataSource",
    "DataStatus",
    "Dataset",
    "DatasetError",
    "IDX_FILES",
    "IMAGE_CHANNELS",
    "IMAGE_SHAPE",
    "KBENCH_DATA_DIR_ENV",
    "KERAS_DATASETS",
    "NUM_CLASSES",
    "PIXEL_MAX",
    "PipelineOptions",
    "SYNTHETIC_NOISE_STD",
    "SYNTHETIC_TEST_SIZE",
    "SYNTHETIC_TRAIN_SIZE",
    "dataset_status",
    "load_dataset",
    "load_idx_folder",
    "local_source",
    "offline_hint",
    "make_pipeline",
    "make_splits",
    "read_idx",
    "save_idx_folder",
    "to_arrays",
    "validate_arrays",
    "write_idx",
]


def __getattr__(name):
    if name in _PIPELINE_NAMES:
        return getattr(importlib.import_module("kbench.data.pipelines"), name)
    raise AttributeError(f"module 'kbench.data' has no attribute {name!r}")
