"""Datasets (IDX files, Keras loaders, bundled mnist-5k, synthetic) and tf.data pipelines.

Every dataset is a validated, frozen :class:`Dataset` of uint8 (N, 28, 28)
images and integer labels; :func:`make_pipeline` turns arrays into a
``tf.data`` input pipeline whose knobs are the fields of :class:`PipelineOptions`.

One module per concern; the names below are the package's API:

    records    the Dataset record, its validation, the shape of MNIST-family data
    idx        IDX files and folders of the four MNIST IDX files
    synthetic  the generated, learnable synthetic dataset
    sources    where each dataset comes from (one table), load_dataset, local_source
    pipelines  PipelineOptions, make_pipeline, make_splits, to_arrays
"""

from kbench.data.idx import (
    IDX_FILES,
    KBENCH_DATA_DIR_ENV,
    load_idx_folder,
    read_idx,
    save_idx_folder,
    write_idx,
)
from kbench.data.pipelines import AUTOTUNE, PipelineOptions, make_pipeline, make_splits, to_arrays
from kbench.data.records import (
    IMAGE_CHANNELS,
    IMAGE_SHAPE,
    NUM_CLASSES,
    PIXEL_MAX,
    Dataset,
    DatasetError,
    validate_arrays,
)
from kbench.data.sources import DOWNLOAD_TIMEOUT_S, DataSource, load_dataset, local_source
from kbench.data.synthetic import SYNTHETIC_NOISE_STD, SYNTHETIC_TEST_SIZE, SYNTHETIC_TRAIN_SIZE

__all__ = [
    "AUTOTUNE",
    "DOWNLOAD_TIMEOUT_S",
    "DataSource",
    "Dataset",
    "DatasetError",
    "IDX_FILES",
    "IMAGE_CHANNELS",
    "IMAGE_SHAPE",
    "KBENCH_DATA_DIR_ENV",
    "NUM_CLASSES",
    "PIXEL_MAX",
    "PipelineOptions",
    "SYNTHETIC_NOISE_STD",
    "SYNTHETIC_TEST_SIZE",
    "SYNTHETIC_TRAIN_SIZE",
    "load_dataset",
    "load_idx_folder",
    "local_source",
    "make_pipeline",
    "make_splits",
    "read_idx",
    "save_idx_folder",
    "to_arrays",
    "validate_arrays",
    "write_idx",
]
