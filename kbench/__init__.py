"""kbench: reference TensorFlow/Keras training workflows and benchmarks.

The public API is the names below; everything else may change. They are
imported lazily, so ``import kbench.stats`` (pure numpy/scipy) does not pull in
TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DatasetError": "kbench.data",
    "PipelineOptions": "kbench.data",
    "load_dataset": "kbench.data",
    "make_pipeline": "kbench.data",
    "build_model": "kbench.models",
    "TrainResult": "kbench.training",
    "train": "kbench.training",
    "KNOWN_ISSUES": "kbench.workflows",
    "REFERENCE_WORKFLOWS": "kbench.workflows",
    "UpstreamBugError": "kbench.workflows",
    "WorkflowSpec": "kbench.workflows",
    "full_matrix": "kbench.workflows",
    "get_workflow": "kbench.workflows",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kbench' has no attribute {name!r}")
