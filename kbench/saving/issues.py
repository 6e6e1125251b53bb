"""The save/load matrix (:class:`SaveCase`) and the upstream bugs plain Keras hits on
its cells (:data:`KNOWN_SAVE_ISSUES`), each worked around in :mod:`kbench.saving`.

Each entry's strict xfail in tests/test_saving.py runs the plain Keras route,
so a release that fixes the bug turns the suite red (XPASS).
"""

from __future__ import annotations

import dataclasses
import re

from kbench import models
from kbench._validate import check_choice, check_str
from kbench import workflows as wf
from kbench.saving.formats import FORMATS

# The precisions of the save/load matrix (the issue's float32 and mixed_float16).
MATRIX_PRECISIONS = ("float32", "mixed_float16")


# SaveCase.loss for the loss kbench compiles with (kbench.loops.make_loss()).
KBENCH_LOSS = "kbench"


@dataclasses.dataclass(frozen=True)
class SaveCase:
    """One cell of the save/load matrix: a format and the model saved in it.

    ``loss`` is KBENCH_LOSS for the engine's loss object, else a Keras loss
    identifier the model was compiled with (e.g. "mse").
    """

    format: str
    family: str = "mlp"
    style: str = "functional"
    precision: str = "float32"
    loss: str = KBENCH_LOSS

    def __post_init__(self) -> None:
        choices = {"format": tuple(FORMATS), "family": models.FAMILIES,
                   "style": models.STYLES, "precision": wf.PRECISIONS}
        for field, allowed in choices.items():
            check_choice(field, getattr(self, field), allowed)
        check_str("loss", self.loss)

    @property
    def name(self) -> str:
        parts = [self.format, self.family, self.style, wf.PRECISION_TAGS[self.precision]]
        return "-".join(parts if self.loss == KBENCH_LOSS else [*parts, self.loss])

    @property
    def known_issue(self) -> "SaveIssue | None":
        """The first known upstream bug plain Keras hits on this case, if any."""
        return next((issue for issue in KNOWN_SAVE_ISSUES if issue.applies_to(self)), None)


def save_matrix() -> tuple[SaveCase, ...]:
    """Every format x family x style x MATRIX_PRECISIONS, with the engine's loss."""
    return tuple(SaveCase(fmt, family, style, precision)
                 for fmt in FORMATS for family in models.FAMILIES
                 for style in models.STYLES for precision in MATRIX_PRECISIONS)


@dataclasses.dataclass(frozen=True)
class SaveIssue(wf.KnownIssue):
    """A known upstream bug on a plain Keras save/load route that kbench works around.

    ``when`` is over SaveCase fields; a tuple value matches any of its items.
    ``workaround`` says what kbench.saving does instead.
    """

    def __post_init__(self) -> None:
        unknown = sorted(set(self.when) - {f.name for f in dataclasses.fields(SaveCase)})
        if unknown:
            raise wf.WorkflowError(
                f"SaveIssue {self.reference}: unknown SaveCase field(s) {unknown}")
        re.compile(self.error_match)

    def applies_to(self, case) -> bool:
        return all(getattr(case, k) in (v if isinstance(v, tuple) else (v,))
                   for k, v in self.when.items())


_LEGACY_H5 = "keras/src/legacy/saving"

# Found by running save_matrix() through plain Keras (save, load under the
# default float32 policy, predict, one training step) on TF 2.21 / Keras 3.15.
# Order matters: a case reports the first entry that applies. Keep each entry
# until its strict xfail in tests/test_saving.py turns XPASS.
KNOWN_SAVE_ISSUES: tuple[SaveIssue, ...] = (
    SaveIssue(
        reference="keras-team/keras#21429 (alias lookup in keras/src/saving/serialization_lib.py)",
        summary=(
            "Loading a legacy .h5 model compiled with a loss alias fails: keras.losses."
            "deserialize('mse') pairs the alias with the module of the canonical function, "
            "keras.metrics, which has no 'mse', and the module lookup added by #21429 reports "
            "that as 'not a KerasSaveable subclass'. Every alias fails (mse, mae, mape, msle, "
            "kld, bce); compile=False loads."
        ),
        when={"format": "h5", "loss": "mse"},
        error_type=ValueError,
        error_match=r"Could not deserialize 'keras\.metrics\.mse' because it is not a "
                    r"KerasSaveable subclass",
        workaround="kbench.saving.load compiles .h5 models itself, handing saved loss strings "
                   "to compile(), which resolves aliases; plain Keras: compile=False, then "
                   "compile.",
    ),
    SaveIssue(
        reference=f"{_LEGACY_H5}/saving_utils.py:101 model_metadata (no upstream issue found)",
        summary=(
            "Legacy .h5 records a model's class as model.__class__.__name__ ('KBenchModel') "
            "while registered classes are looked up as 'package>Name' ('kbench>KBenchModel'), "
            "and it stores no build config, so even with custom_objects the subclassed model "
            "is not built and its weights do not load ('Layer count mismatch')."
        ),
        when={"format": "h5", "style": "subclassed"},
        error_type=ValueError,
        error_match=r"Unknown layer: 'KBenchModel'",
        workaround="kbench.saving.load maps kbench's bare class names to builders that "
                   "construct and build the model; plain Keras: use .keras.",
    ),
    SaveIssue(
        reference=f"{_LEGACY_H5}/legacy_h5_format.py:175 (no upstream issue found)",
        summary=(
            "load_model_from_hdf5 builds the restored optimizer over model._trainable_variables, "
            "which is empty for a Model: the slots are dropped, only the iteration count is "
            "set, and the next training step fails."
        ),
        when={"format": "h5", "style": ("sequential", "functional")},
        error_type=ValueError,
        error_match=r"Unknown variable: .*This optimizer can only be called for the variables "
                    r"it was originally built with",
        workaround="kbench.saving.load compiles from the file's training config and sets the "
                   "saved optimizer values on an optimizer built over the model's variables.",
    ),
    SaveIssue(
        reference="keras/src/trainers/trainer.py:178 compile + Functional config without dtype "
                  "(no upstream issue found)",
        summary=(
            "A Sequential/Functional model does not save its own dtype policy, so it reloads "
            "under the global one; under float32, compile_from_config does not wrap the "
            "optimizer in LossScaleOptimizer and the saved mixed_float16 optimizer state is "
            "skipped with only a warning."
        ),
        when={"format": "keras", "style": ("sequential", "functional"),
              "precision": "mixed_float16"},
        error_type=UserWarning,
        error_match=r"Skipping variable loading for optimizer",
        workaround="kbench.saving.load loads under the policy recorded in the file's layer "
                   "configs (saved_policy).",
    ),
    SaveIssue(
        reference="keras/src/export/export_utils.py:64 input_dtype (no upstream issue found)",
        summary=(
            "model.export infers a subclassed model's serving signature from its input dtype, "
            "which under mixed_float16 is the compute dtype float16, so the endpoint rejects "
            "the float32 images the Sequential/Functional exports take."
        ),
        when={"format": "savedmodel", "style": "subclassed", "precision": "mixed_float16"},
        error_type=TypeError,
        error_match=r"Can not cast TensorSpec\(.*dtype=tf\.float32.*\) to "
                    r"TensorSpec\(.*dtype=tf\.float16",
        workaround="kbench.saving.save exports models without symbolic inputs with an explicit "
                   "float32 input_signature.",
    ),
)
