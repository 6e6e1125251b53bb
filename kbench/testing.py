"""Shared test helpers: fake TensorFlow modules, fingerprints, tiny data and specs.

Library code that every test module imports, as Keras keeps
``keras/src/testing``: no test file builds its own copy of these. Nothing here
imports TensorFlow at module level, so pure tests (stats, compare, results)
stay fast; the helpers that need it import it when called.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

# Sizes of the tiny learnable dataset the engine tests train on: 4 steps an
# epoch at the default batch of 64, a test split of two batches.
TINY_TRAIN = 256
TINY_TEST = 128


def fake_tf(version: str = "9.9.9", *, gpu_names=(), intra: int = 0, inter: int = 0,
            cuda_build: bool = False):
    """The part of the ``tensorflow`` module that kbench.fingerprint reads.

    Args:
        version: ``tf.__version__``.
        gpu_names: one fake physical GPU per name (its ``device_name`` detail).
        intra, inter: what the threading getters return (0: TF's default).
        cuda_build: what ``sysconfig.get_build_info()["is_cuda_build"]`` says
            (a CUDA build also reports CUDA 12.5 / cuDNN 9).
    """
    devices = [SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU")
               for i in range(len(gpu_names))]
    details = {d.name: {"device_name": n, "compute_capability": (8, 0)}
               for d, n in zip(devices, gpu_names)}
    build = {"is_cuda_build": cuda_build}
    if cuda_build:
        build.update(cuda_version="12.5", cudnn_version="9")
    return SimpleNamespace(
        __version__=version,
        __git_version__=f"v{version}-fake",
        sysconfig=SimpleNamespace(get_build_info=lambda: dict(build)),
        config=SimpleNamespace(
            threading=SimpleNamespace(get_intra_op_parallelism_threads=lambda: intra,
                                      get_inter_op_parallelism_threads=lambda: inter),
            list_physical_devices=lambda kind: list(devices) if kind == "GPU" else [],
            experimental=SimpleNamespace(get_device_details=lambda d: details[d.name]),
        ),
    )


def fake_fingerprint(tf_version: str = "2.21.0", *, cpuinfo_path=os.devnull, environ=None,
                     **tf_options) -> dict:
    """A valid kbench fingerprint of a CPU-only machine, from a fake TF module.

    ``tf_options`` go to :func:`fake_tf` (gpu_names, intra, inter, cuda_build).
    """
    from kbench import fingerprint

    return fingerprint.fingerprint(cpuinfo_path=cpuinfo_path,
                                   environ={} if environ is None else environ,
                                   tf_module=fake_tf(tf_version, **tf_options),
                                   determinism=False)


def tiny_dataset(seed: int = 0, *, n_train: int = TINY_TRAIN, n_test: int = TINY_TEST):
    """Learnable synthetic MNIST-shaped data, small enough to train in a second."""
    from kbench import data

    return data.load_dataset("synthetic", n_train=n_train, n_test=n_test, seed=seed)
