"""Inside one worker process (``python -m kbench.worker``, started by :mod:`kbench.cluster`).

The worker reads its :class:`~kbench.cluster.WorkerJob` back from its command
line, sets the device layout up before TensorFlow initialises, trains through
the engine (:func:`kbench.training.train`, or :func:`kbench.resume.train_resumable`
with a checkpoint directory) and writes the engine's record, or its error, as
its result file. Fault injection and epoch logs are Keras callbacks added here.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from kbench import cluster
from kbench._files import atomic_write_bytes


def _hold_callback(keras, job: cluster.WorkerJob):
    """After batch ``hold_at[1]`` of epoch ``hold_at[0]``: write the held marker, then wait
    to be killed."""
    seen = {}

    def hold(batch, logs=None):
        if (seen.get("epoch"), batch) == tuple(job.hold_at):
            atomic_write_bytes(job.held_marker, str(os.getpid()).encode())
            while True:
                time.sleep(1)

    return keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs=None: seen.update(epoch=epoch), on_train_batch_end=hold)


def _append_epoch(path: Path, epoch: int, logs: Mapping | None) -> None:
    """Append ``epoch`` (absolute) and its logs to a CSV epoch log, one synced row per epoch."""
    logs = {k: float(v) for k, v in (logs or {}).items()}
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["epoch", *sorted(logs)])
        writer.writerow([epoch, *(logs[k] for k in sorted(logs))])
        f.flush()
        os.fsync(f.fileno())


def read_epoch_log(path) -> list[dict]:
    """Rows of an epoch log: {'epoch': int, metric: float, ...}."""
    with open(path, newline="") as f:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _train(job: cluster.WorkerJob, chief: bool) -> dict:
    """Train the job through the engine; its TrainResult record plus the replica count."""
    import keras

    log_epoch = (lambda epoch, logs: _append_epoch(job.epoch_log, epoch, logs)) \
        if job.epoch_log is not None and chief else None
    callbacks = [] if job.hold_at is None else [_hold_callback(keras, job)]
    run = _train_resumable if job.checkpoint_dir is not None else _train_plain
    result = run(job, chief, callbacks, log_epoch)
    return {**result.to_dict(), "replicas": result.model.distribute_strategy.num_replicas_in_sync}


def _train_plain(job: cluster.WorkerJob, chief: bool, callbacks: list, log_epoch):
    import keras

    from kbench import training

    if job.backup_dir is not None:
        callbacks.insert(0, keras.callbacks.BackupAndRestore(str(job.backup_dir)))
    if log_epoch is not None:  # fit numbers epochs from the backup's epoch on
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=log_epoch))
    return training.train(job.spec, callbacks=callbacks, allow_known_issue=job.allow_known_issue)


def _train_resumable(job: cluster.WorkerJob, chief: bool, callbacks: list, log_epoch):
    from kbench import resume  # imports kbench.saving: only workers that checkpoint do

    with tempfile.TemporaryDirectory(prefix="kbench-worker-") as scratch:
        # Only the chief writes the real checkpoints; the others must still
        # save (saving reads distributed variables), into throw-away folders.
        return resume.train_resumable(
            job.spec, job.checkpoint_dir, write_directory=job.checkpoint_dir if chief else scratch,
            callbacks=callbacks, on_epoch_end=log_epoch, allow_known_issue=job.allow_known_issue)


def main(argv: Sequence[str] | None = None) -> int:
    """The worker: train the job, write its result (or its error); 0 on success, 1 on an
    error in training (in the result), 2 on a bad command line (on stderr, no result)."""
    try:
        job = cluster.WorkerJob.from_argv(sys.argv[1:] if argv is None else argv)
    except (TypeError, ValueError) as err:
        print(f"kbench worker: {err}", file=sys.stderr)
        return 2
    from kbench import distribute  # imports TensorFlow: set devices up before any op runs

    if job.logical_cpus is not None:
        distribute.configure_logical_cpus(job.logical_cpus)
    if job.spec.strategy == "multi_worker_mirrored":
        # TF configures collectives once, before the first op; make_strategy caches it.
        distribute.make_strategy(job.spec)
    config = distribute.tf_config()
    chief = distribute.is_chief(config)
    record = {"kbench_worker_schema": cluster.RESULT_SCHEMA_VERSION,
              "task": None if config is None else config["task"], "chief": chief}
    try:
        record.update(_train(job, chief))
        record["error"] = None
        code = 0
    except Exception as err:  # reported in the result, for the parent to assert on
        traceback.print_exc()
        record.update(spec=job.spec.to_dict(), error={"type": type(err).__name__,
                                                      "module": type(err).__module__,
                                                      "message": str(err)})
        code = 1
    atomic_write_bytes(job.result, json.dumps(record, indent=1).encode())
    return code


if __name__ == "__main__":
    sys.exit(main())
