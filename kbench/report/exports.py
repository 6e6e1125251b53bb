"""Exports of stored runs: github-action-benchmark JSON and TensorBoard event files."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kbench import _validate, results, stats
from kbench.report.document import THROUGHPUT_UNIT, output_dir
from kbench.report.tables import ReportError, check_memory_runs



def _check_run(run, where: str = "run") -> None:
    if not isinstance(run, results.Run):
        raise ReportError(f"{where} must be a kbench.results.Run, got {type(run).__name__}: "
                          f"{run!r:.80}")
    if not run.results:
        raise ReportError(f"{where} {run.label!r} ({run.source or 'in memory'}) has no results")


def _tooltip(run, result, summary: stats.Summary) -> str:
    """github-action-benchmark shows ``extra`` as the data point's tooltip, line by line."""
    fields = {"workflow": result.workflow, "device": result.device,
              "batch size": result.batch_size}
    return "\n".join([
        *(f"{k}: {v}" for k, v in fields.items() if v is not None),
        f"{summary.n} rounds, 95% CI [{summary.ci_low:.2f}, {summary.ci_high:.2f}], "
        f"cv {summary.cv:.1%}",
        f"TensorFlow {run.tf_version} on {run.machine_key}, {run.datetime}",
    ])


def github_benchmark_json(run) -> list[dict]:
    """github-action-benchmark ``customBiggerIsBetter`` entries, one per benchmark of ``run``.

    ``value`` is the median samples/s over rounds; ``range`` is "± half the
    width of its 95% CI"; ``extra`` (the tooltip) says what and where.
    """
    _check_run(run)
    entries = []
    for key, result in run.results.items():
        summary = result.throughput
        entries.append({
            "name": key,
            "unit": THROUGHPUT_UNIT,
            "value": summary.median,
            "range": f"± {(summary.ci_high - summary.ci_low) / 2:.2f}",
            "extra": _tooltip(run, result, summary),
        })
    return entries


def github_smaller_json(run) -> list[dict]:
    """github-action-benchmark ``customSmallerIsBetter`` entries of ``run``: per
    benchmark, its startup (seconds) and, where it has exact counters
    (kbench.counters), its step's traces, XLA compilations and graph nodes (summed
    over its compiled functions). github-action-benchmark takes one direction a
    file, so these go apart from :func:`github_benchmark_json`'s throughput.
    """
    _check_run(run)
    entries = []
    for key, result in run.results.items():
        extra = f"TensorFlow {run.tf_version} on {run.machine_key}, {run.datetime}"
        if result.startup_s is not None:
            entries.append({"name": f"{key} startup", "unit": "s", "value": result.startup_s,
                            "extra": "tracing, compilation and the first step\n" + extra})
        split = result.startup_split
        if split is not None:
            entries.append({"name": f"{key} trace+compile", "unit": "s",
                            "value": split.trace_compile_s,
                            "extra": "the first execution's excess over a steady one\n"
                                     + extra})
        if split is not None and split.tracing_s is not None:
            entries += [{"name": f"{key} tracing", "unit": "s", "value": split.tracing_s,
                         "extra": "TensorFlow's clock of tf.function tracing\n" + extra},
                        {"name": f"{key} compile", "unit": "s", "value": split.compile_s,
                         "extra": "trace+compile without the tracing\n" + extra}]
        found = result.counters
        if found is None:
            continue
        values = {"traces": sum(found.traces.values()),
                  "graph nodes": sum(found.graph_nodes.values()),
                  "XLA compilations": found.xla_compilations}
        for name, value in values.items():
            if value is not None:
                entries.append({"name": f"{key} {name}", "unit": name.split()[-1],
                                "value": value, "extra": extra})
    return entries


def memory_values(workflow) -> dict[str, float]:
    """A ``kbench memory`` workflow's (kbench.memcheck.WorkflowMemory) numbers in bytes, by
    name: its fresh-process peak RSS, what its training added at that peak, its GPU
    peak where it has one, and the RSS slope per call without and with clear_session."""
    peak = workflow.peak
    values = {"peak RSS": peak.peak_bytes, "training's peak": peak.run_bytes,
              "GPU peak": peak.device_peak_bytes}
    for process in workflow.processes:
        session = "with" if process.clear_session else "without"
        values[f"RSS per call {session} clear_session"] = process.leak.bytes_per_call
    return {name: value for name, value in values.items() if value is not None}


def memory_github_json(run) -> list[dict]:
    """github-action-benchmark ``customSmallerIsBetter`` entries of a ``kbench memory``
    run (kbench.memcheck.MemoryRun): per workflow, :func:`memory_values` in MB."""
    extra = f"TensorFlow {run.tf_version}, {run.datetime}"
    return [{"name": f"{workflow.workflow} {name}", "unit": "MB",
             "value": round(value / 1e6, 3), "extra": extra}
            for workflow in run.workflows for name, value in memory_values(workflow).items()]


def memory_scalars(workflow) -> dict[str, float]:
    """:func:`memory_values` as TensorBoard scalar tags in MB (``memory/peak_RSS_mb``...),
    and the models each process left alive (``memory/alive/...``)."""
    tags = {f"memory/{_UNSAFE_PATH_CHARS.sub('_', name)}_mb": value / 1e6
            for name, value in memory_values(workflow).items()}
    for process in workflow.processes:
        if process.leak.alive is not None:
            session = "with" if process.clear_session else "without"
            tags[f"memory/alive/{session}_clear_session"] = process.leak.alive
    return tags


def counter_scalars(result) -> dict[str, float]:
    """A record's exact counters and startup parts as TensorBoard scalar tags (none
    without them)."""
    tags: dict[str, float] = {}
    split = result.startup_split
    if split is not None:
        tags.update({"startup/setup_s": split.setup_s,
                     "startup/first_execution_s": split.first_execution_s,
                     "startup/trace_compile_s": split.trace_compile_s})
        if split.tracing_s is not None:
            tags.update({"startup/tracing_s": split.tracing_s,
                         "startup/compile_s": split.compile_s})
    found = result.counters
    if found is None:
        return tags
    tags.update({f"counters/traces/{name}": n for name, n in found.traces.items()})
    tags.update({f"counters/graph_nodes/{name}": n for name, n in found.graph_nodes.items()})
    if found.xla_compilations is not None:
        tags["counters/xla_compilations"] = found.xla_compilations
    return tags


# Characters kept in TensorBoard run folder names; anything else becomes "_".
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._=\[\]-]+")
# Record fields exported as scalars besides throughput and latency, when numeric.
TENSORBOARD_EXTRA_SCALARS = ("startup_s", "mfu")


def _unique_dir_names(names: Iterable[str]) -> list[str]:
    """Path-safe names, suffixed ``-2``, ``-3``... where two would collide."""
    out, seen = [], set()
    for name in names:
        base = _UNSAFE_PATH_CHARS.sub("_", name).strip("._") or "run"
        candidate, n = base, 1
        while candidate in seen:
            n += 1
            candidate = f"{base}-{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def tensorboard_hparams(run, result) -> dict[str, str | int]:
    """The hparams of one (run, benchmark) trial; fields the result lacks are left out."""
    hparams = {"tf_version": run.tf_version, "machine": run.machine_key, "benchmark": result.key,
               "run": run.datetime, "workflow": result.workflow, "device": result.device,
               "batch_size": result.batch_size}
    return {k: v for k, v in hparams.items() if v is not None}


@contextlib.contextmanager
def _trial(tf, hp, path: Path, hparams: Mapping):
    """A TensorBoard trial at ``path`` (a run folder's child): its writer as the default,
    its hparams written (those that are None left out), closed at the end."""
    writer = tf.summary.create_file_writer(str(path))
    try:
        with writer.as_default():
            hp.hparams({k: v for k, v in hparams.items() if v is not None},
                       trial_id=f"{path.parent.name}/{path.name}")
            yield
    finally:
        writer.close()


def _write_trial(tf, hp, path: Path, run, result) -> None:
    with _trial(tf, hp, path, tensorboard_hparams(run, result)):
        for step, value in enumerate(result.samples_per_s):
            tf.summary.scalar("samples_per_s", value, step=step)
        tf.summary.scalar("median_samples_per_s", result.throughput.median,
                          step=0)
        latencies = result.step_latency_s.to_dict() if result.step_latency_s else {}
        for q, seconds in latencies.items():
            tf.summary.scalar(f"step_latency_s/{q}", seconds, step=0)
        for field in TENSORBOARD_EXTRA_SCALARS:
            value = getattr(result, field)
            if _validate.is_number(value) and math.isfinite(value):
                tf.summary.scalar(field, value, step=0)
        for tag, value in counter_scalars(result).items():
            tf.summary.scalar(tag, value, step=0)


def _new_run_dirs(log_dir, labels: Sequence[str]) -> list[Path]:
    """One run folder per label under ``log_dir``, none of which may exist yet."""
    root = output_dir(log_dir)
    run_dirs = [root / name for name in _unique_dir_names(labels)]
    taken = [str(d) for d in run_dirs if d.exists()]
    if taken:
        raise ReportError(f"TensorBoard run folder(s) already exist: {taken}; TensorBoard "
                          "would merge old and new events; pick an empty log_dir")
    return run_dirs


def write_tensorboard(runs: Sequence, log_dir) -> list[Path]:
    """TensorBoard event files: one folder per run, in it one trial per benchmark.

    ``log_dir/<run label>/<benchmark key>/`` holds the hparams (tf_version,
    machine, benchmark, workflow, device, batch_size, run) and scalars
    (samples_per_s per round, median_samples_per_s, step_latency_s/p50..p99,
    startup_s, mfu, and the exact counters: counters/traces/<function>,
    counters/graph_nodes/<function>, counters/xla_compilations), so TensorBoard's HParams dashboard can filter and compare
    benchmarks across TF versions and machines.

    Returns:
        The run folders, in the order of ``runs``.
    """
    runs = list(runs)
    if not runs:
        raise ReportError(f"write_tensorboard needs at least one run, got {runs!r}")
    for i, run in enumerate(runs):
        _check_run(run, f"runs[{i}]")
    run_dirs = _new_run_dirs(log_dir, [run.label for run in runs])
    import tensorflow as tf  # only here: reports do not otherwise need TensorFlow
    from tensorboard.plugins.hparams import api as hp

    for run, run_dir in zip(runs, run_dirs):
        names = _unique_dir_names(run.results)
        for name, result in zip(names, run.results.values()):
            _write_trial(tf, hp, run_dir / name, run, result)
    return run_dirs


def write_memory_tensorboard(runs: Sequence, log_dir) -> list[Path]:
    """TensorBoard event files of ``kbench memory`` runs (kbench.memcheck.MemoryRun): one
    folder per run (``memory tf<version> <machine> <time>``), in it one trial per
    workflow with hparams (tf_version, machine, workflow, run) and
    :func:`memory_scalars` at step 0, and each process's RSS after each of its
    leak check's calls (``memory/rss_mb/<without|with>_clear_session``, step =
    call), so a leak shows as a rising line.

    Returns:
        The run folders, in the order of ``runs``.
    """
    runs = check_memory_runs(runs, "write_memory_tensorboard")
    run_dirs = _new_run_dirs(log_dir, [f"memory {run.label}" for run in runs])
    import tensorflow as tf  # only here: reports do not otherwise need TensorFlow
    from tensorboard.plugins.hparams import api as hp

    for run, run_dir in zip(runs, run_dirs):
        names = _unique_dir_names(w.workflow for w in run.workflows)
        for name, workflow in zip(names, run.workflows):
            hparams = {"tf_version": run.tf_version, "machine": run.fingerprint.get("machine_key"),
                       "workflow": workflow.workflow, "run": run.datetime}
            with _trial(tf, hp, run_dir / name, hparams):
                for tag, value in memory_scalars(workflow).items():
                    tf.summary.scalar(tag, value, step=0)
                for process in workflow.processes:
                    session = "with" if process.clear_session else "without"
                    for call, rss in enumerate(process.leak.rss):
                        tf.summary.scalar(f"memory/rss_mb/{session}_clear_session", rss / 1e6,
                                          step=call)
    return run_dirs
