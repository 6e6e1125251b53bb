"""``kbench list``, ``env`` and ``run``: the workflows, this machine, one training run."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from kbench import _format, data, fingerprint, workflows
from kbench.cli._common import CliError, bad_input, console, import_tensorflow, positive_int, say
from kbench.cli._options import DataDirOption, DatasetName, check_data_dir, str_enum
from kbench.cli._progress import keras_progress, progress_bar
from kbench.cli._tables import history_table, metric, workflow_table

Family = str_enum("Family", workflows.FAMILIES)
Style = str_enum("Style", workflows.STYLES)
Loop = str_enum("Loop", workflows.LOOPS)
Execution = str_enum("Execution", workflows.EXECUTIONS)
# Precision by its tag in workflow names (fp32) or its Keras policy name (float32).
Precision = str_enum("Precision", (*workflows.PRECISION_BY_TAG, *workflows.PRECISIONS))


def _values(chosen: Sequence[enum.Enum] | None) -> tuple[str, ...] | None:
    return tuple(c.value for c in chosen) if chosen else None


def list_workflows(
    family: Annotated[Optional[list[Family]],
                      typer.Option(help="model family (repeatable)")] = None,
    style: Annotated[Optional[list[Style]], typer.Option(help="build style (repeatable)")] = None,
    loop: Annotated[Optional[list[Loop]], typer.Option(help="training loop (repeatable)")] = None,
    execution: Annotated[Optional[list[Execution]],
                         typer.Option(help="eager, tf.function or XLA (repeatable)")] = None,
    precision: Annotated[Optional[list[Precision]],
                         typer.Option(help="tag or policy name (repeatable)")] = None,
    reference: Annotated[bool, typer.Option(
        "--reference", help="only the reference workflows the accuracy suite trains")] = False,
    tutorials: Annotated[bool, typer.Option(
        "--tutorials", help="only the TensorFlow/Keras tutorials' workflows")] = False,
    names_only: Annotated[bool, typer.Option(
        "--names", help="print names only, one a line")] = False,
) -> None:
    """List workflows (every combination and the tutorials', or the reference or tutorial
    ones), filtered by field."""
    if reference and tutorials:
        raise CliError("--reference and --tutorials list different workflows: give one")
    tutorial_specs = tuple(workflows.TUTORIAL_WORKFLOWS.values())
    specs = (tuple(workflows.REFERENCE_WORKFLOWS.values()) if reference else tutorial_specs
             if tutorials else workflows.full_matrix() + tutorial_specs)
    filters = {"family": _values(family), "style": _values(style), "loop": _values(loop),
               "execution": _values(execution),
               "precision": tuple(workflows.PRECISION_BY_TAG.get(p, p)
                                  for p in _values(precision) or ())}
    specs = workflows.select(specs, **{k: v for k, v in filters.items() if v})
    out = console()
    if not names_only:
        out.print(workflow_table(specs))
        return
    for spec in specs:
        say(out, spec.name)


def env(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="the whole fingerprint as JSON")] = False,
) -> None:
    """Show this machine's fingerprint: software, CPU, threads, GPUs, environment."""
    import_tensorflow(ctx)
    fp = fingerprint.fingerprint()
    if as_json:
        typer.echo(json.dumps(fp, indent=2, sort_keys=True))
        return
    out = console()
    for line in fingerprint.describe(fp):
        say(out, line)


def _check_no_checkpoint(output_dir: Path | None, name: str) -> None:
    """Refuse an output folder whose checkpoint the run would overwrite."""
    checkpoint = output_dir / name if output_dir is not None else None
    if checkpoint is not None and checkpoint.exists():
        raise CliError(f"--output-dir {str(output_dir)!r} already holds a checkpoint "
                       f"({str(checkpoint)!r}) the run would overwrite: move it, or give "
                       "another folder")


def _load(spec: workflows.WorkflowSpec, data_dir: Path | None) -> data.Dataset | None:
    """The dataset in ``data_dir`` (None: none given, training loads the spec's own)."""
    check_data_dir(data_dir, spec.dataset)
    if data_dir is None:
        return None
    with bad_input(data.DatasetError):
        return data.load_dataset(spec.dataset, data_dir=data_dir, seed=spec.seed)


def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(
        help="a workflow name, e.g. mlp-functional-custom-xla-fp32 (see kbench list)")],
    epochs: Annotated[Optional[int], typer.Option(
        parser=positive_int, help="override the epochs")] = None,
    dataset: Annotated[Optional[DatasetName], typer.Option(help="override the dataset")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        parser=positive_int, help="override the batch size")] = None,
    tensorboard: Annotated[Optional[Path], typer.Option(
        help="also log to this TensorBoard log dir (keras.callbacks.TensorBoard)")] = None,
    data_dir: DataDirOption = None,
    output_dir: Annotated[Optional[Path], typer.Option(
        help="where the workflow's own callbacks write their checkpoint and TensorBoard "
             "logs, kept (default: a temporary folder, removed after the run)")] = None,
) -> None:
    """Train a workflow once and print its metrics."""
    overrides = {"epochs": epochs, "dataset": dataset.value if dataset else None,
                 "batch_size": batch_size}
    with bad_input(workflows.WorkflowError):
        spec = workflows.get_workflow(workflow, **{k: v for k, v in overrides.items()
                                                   if v is not None})
    if tensorboard is not None and tensorboard.exists() and not tensorboard.is_dir():
        raise CliError(f"--tensorboard must be a folder, got the file {str(tensorboard)!r}")
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        raise CliError(f"--output-dir must be a folder, got the file {str(output_dir)!r}")
    loaded = _load(spec, data_dir)  # before TensorFlow: a wrong folder fails fast
    import_tensorflow(ctx)
    import keras

    from kbench import callbacks as kcallbacks
    from kbench import training

    _check_no_checkpoint(output_dir, kcallbacks.CHECKPOINT_FILE)

    out = console()
    origin = f" from {data_dir}" if data_dir is not None else ""
    say(out, f"training {spec.name} on {spec.dataset}{origin}: {spec.epochs} epoch(s), "
             f"batch size {spec.batch_size}, {spec.optimizer} lr {spec.learning_rate:g}, "
             f"seed {spec.seed}")
    progress = progress_bar(out, "loss")
    callbacks = [keras_progress(progress)]
    if tensorboard is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard)))
    with bad_input(workflows.UpstreamBugError, data.DatasetError), progress:
        result = training.train(spec, dataset=loaded, callbacks=callbacks,
                                output_dir=output_dir)
    out.print(history_table(result.history))
    rate = result.samples_seen / result.wall_time_s if result.wall_time_s > 0 else math.nan
    for line in (f"test_accuracy {metric(result.test_accuracy)}",
                 f"test_loss {metric(result.test_loss)}",
                 f"epochs_run {result.epochs_run}", f"steps {result.steps}",
                 f"wall_time {_format.seconds(result.wall_time_s)}",
                 f"samples_per_s {_format.rate(rate)} (over wall_time: with tracing and "
                 "validation)"):
        say(out, line)
    if tensorboard is not None:
        say(out, f"TensorBoard logs: {tensorboard}")
    if output_dir is not None:
        written = (f"the workflow's checkpoint and logs: {output_dir}"
                   if kcallbacks.needs_output_dir(spec) else
                   f"--output-dir {output_dir}: {spec.name}'s callbacks write no files")
        say(out, written)
