"""Save and load kbench models in every format Keras/TF users rely on, without losing data.

One concern, four rooms; the names below are the package's public API:

- :mod:`~kbench.saving.formats`: formats as data (:data:`FORMATS`), the
  atomic :func:`save` and the checked :func:`load` (:class:`LoadError` names
  the file and the cause).
- :mod:`~kbench.saving.checkpoints`: model + optimizer + dropout random state
  in a ``tf.train.CheckpointManager`` directory (what resumable training,
  :mod:`kbench.resume`, writes).
- :mod:`~kbench.saving.workarounds`: how ``save``/``load`` get right what
  plain Keras 3.15 / TF 2.21 get wrong (legacy ``.h5``, mixed-precision
  ``.keras`` and SavedModel).
- :mod:`~kbench.saving.issues`: those upstream bugs (:data:`KNOWN_SAVE_ISSUES`)
  and the save/load matrix they are tested on (:class:`SaveCase`).
"""

from kbench.saving.checkpoints import (
    CHECKPOINTS_KEPT, checkpoint_manager, make_checkpoint, restore_latest, rng_state,
)
from kbench.saving.formats import (
    FORMATS, HDF5_MAGIC, ZIP_MAGIC, Format, LoadError, MissingFileError, SaveError, atomic_write,
    format_for, load, save,
)
from kbench.saving.issues import (
    KBENCH_LOSS, KNOWN_SAVE_ISSUES, MATRIX_PRECISIONS, SaveCase, SaveIssue, save_matrix,
)
from kbench.saving.workarounds import saved_policy

__all__ = [
    "CHECKPOINTS_KEPT", "FORMATS", "HDF5_MAGIC", "KBENCH_LOSS", "KNOWN_SAVE_ISSUES",
    "MATRIX_PRECISIONS", "ZIP_MAGIC", "Format", "LoadError", "MissingFileError", "SaveCase",
    "SaveError", "SaveIssue", "atomic_write", "checkpoint_manager", "format_for", "load",
    "make_checkpoint", "restore_latest", "rng_state", "save", "save_matrix", "saved_policy",
]
