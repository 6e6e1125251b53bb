"""Shared test helpers: fake TensorFlow modules, fingerprints, tiny data and specs.

Library code that every test module imports, as Keras keeps
``keras/src/testing``: no test file builds its own copy of these. Nothing here
imports TensorFlow at module level, so pure tests (stats, compare, results)
stay fast; the helpers that need it import it when called.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
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


def counting_timer(step: float = 1.0):
    """A fake clock that advances by ``step`` at every read."""
    import itertools

    ticks = itertools.count()
    return lambda: next(ticks) * step


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = f"/proc/{pid}/stat"
    return not (os.path.exists(stat) and open(stat).read().split()[2] == "Z")


def tiny_dataset(seed: int = 0, *, n_train: int = TINY_TRAIN, n_test: int = TINY_TEST):
    """Learnable synthetic MNIST-shaped data, small enough to train in a second."""
    from kbench import data

    return data.load_dataset("synthetic", n_train=n_train, n_test=n_test, seed=seed)


def assert_weights_equal(actual, expected, atol: float = 0.0) -> None:
    """Two sequences of weights (arrays or variables) agree within ``atol``; default bitwise."""
    import numpy as np

    assert len(actual) == len(expected), f"{len(actual)} arrays vs {len(expected)}"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=0, atol=atol)


# --------------------------------------------------------------------------- fake results

# When fake runs happened unless told otherwise (pytest-benchmark's ISO format).
FAKE_DATETIME = "2026-11-23T10:00:00+00:00"
# Per-round spread of fake samples: 2%, about what smoke rounds of the MLP show here.
FAKE_NOISE = 0.02
# Steps per round of fake records (the smoke profile's minimum).
FAKE_STEPS_PER_ROUND = 10


def draw_samples(median: float, n: int, seed: int, noise: float = FAKE_NOISE) -> list[float]:
    """``n`` per-round samples/s around ``median`` with relative spread ``noise``, reproducibly."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [float(v) for v in median * (1 + noise * rng.standard_normal(n))]


def fake_record(key: str, samples_per_s, **fields):
    """A valid BenchmarkRecord of the default MLP workflow on the CPU; ``fields`` override.

    ``spec`` may be a WorkflowSpec or a dict of WorkflowSpec fields to change.
    ``round_s`` follows from the samples unless given.
    """
    from kbench.record import BenchmarkRecord
    from kbench.workflows import WorkflowSpec

    spec = fields.pop("spec", {})
    if isinstance(spec, dict):
        spec = WorkflowSpec(**spec)
    values = {"batch_size": spec.batch_size if spec is not None else 64, "device": "/CPU:0",
              "profile": "default", "steps_per_round": FAKE_STEPS_PER_ROUND, **fields}
    samples = [float(v) for v in samples_per_s]
    values.setdefault("round_s", [values["steps_per_round"] * values["batch_size"] / v
                                  for v in samples if v > 0])
    return BenchmarkRecord(samples_per_s=samples, spec=spec, key=key, **values)


def fake_run(samples, *, fingerprint=None, tf_version: str = "2.21.0",
             datetime: str = FAKE_DATETIME, source: str = "", per_key=None, **fields):
    """A Run of ``{key: per-round samples/s}`` (or ``{key: BenchmarkRecord}``).

    Args:
        fingerprint: the run's fingerprint; default :func:`fake_fingerprint` of
            ``tf_version``.
        per_key: ``{key: {field: value}}`` for single records.
        fields: BenchmarkRecord fields for every record built here.
    """
    from kbench.record import BenchmarkRecord
    from kbench.results import Run

    per_key = per_key or {}
    records = {}
    for key, value in samples.items():
        if isinstance(value, BenchmarkRecord):
            records[key] = value.replace(key=key)
        else:
            records[key] = fake_record(key, value, **{**fields, **per_key.get(key, {})})
    fp = fake_fingerprint(tf_version) if fingerprint is None else fingerprint
    return Run(datetime=datetime, fingerprint=fp, results=records, source=source)


def run_document(run) -> dict:
    """The pytest-benchmark JSON document a session storing ``run`` would write."""
    from kbench import results

    return results.run_document(run.results, run.fingerprint, run.datetime)


def write_run(path, run) -> Path:
    """``run`` stored at ``path`` as a session would store it (folders made); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run_document(run)), encoding="utf-8")
    return path


class FakeSuite:
    """Stands in for ``subprocess.run`` of the benchmark suite (kbench.ab, ``kbench bench``):
    each call stores a run of ``keys`` in the ``--kbench-store`` its command names.

    Args:
        speed: throughput factor by interpreter path (1.0 = ``base_median``).
        keys: the benchmarks each stored run holds.
        n_rounds: rounds per benchmark per invocation.
        exit_codes: a non-zero exit code by call number (1-based): store nothing.
        timeout_at: call number that raises subprocess.TimeoutExpired.
        stores: False to exit 0 without storing anything.
    """

    BASE_MEDIAN = 30000.0

    def __init__(self, speed, *, keys, n_rounds: int = 3, exit_codes=None,
                 timeout_at: int | None = None, stores: bool = True, tf_version="2.21.0"):
        self.speed, self.keys, self.n_rounds = dict(speed), tuple(keys), n_rounds
        self.exit_codes = dict(exit_codes or {})
        self.timeout_at, self.stores, self.tf_version = timeout_at, stores, tf_version
        self.calls: list[dict] = []

    def pythons(self) -> list[str]:
        return [call["command"][0] for call in self.calls]

    def __call__(self, command, *, cwd=None, timeout=None, check=False, **kwargs):
        import subprocess

        from kbench import results

        self.calls.append({"command": list(command), "cwd": cwd, "timeout": timeout, **kwargs})
        n = len(self.calls)
        if n == self.timeout_at:
            raise subprocess.TimeoutExpired(command, timeout, output="collected 2 items\n")
        if n in self.exit_codes:
            return subprocess.CompletedProcess(command, self.exit_codes[n], stdout="1 failed\n",
                                               stderr="E   AssertionError: loss rose\n")
        if self.stores:
            store = command[command.index("--kbench-store") + 1]
            factor = self.speed[command[0]]
            samples = {key: draw_samples(self.BASE_MEDIAN * factor, self.n_rounds,
                                         seed=100 * n + i) for i, key in enumerate(self.keys)}
            run = fake_run(samples, tf_version=self.tf_version,
                           datetime=f"2026-11-23T12:00:{n:02d}+00:00")
            results.write_run(run_document(run), store)
        return subprocess.CompletedProcess(command, 0, stdout="2 passed\n", stderr="")


class FakeVariant:
    """A lockstep group member that trains nothing (kbench.interleaved's variant protocol).

    Its runner returns ``seconds[i]`` for round i (cycling), through its own
    ``warm_up``/``next_round``; its record's throughput follows from those
    seconds at ``steps_per_round`` steps of ``batch_size`` examples.

    Attributes:
        opened, closed: how many runners were opened and closed.
        events: a shared list the runners append ("open", name), ("round", name),
            ("close", name) to, for order checks.
    """

    def __init__(self, name: str, seconds, *, events: list | None = None,
                 fail_in_round: int | None = None, batch_size: int = 64,
                 steps_per_round: int = FAKE_STEPS_PER_ROUND):
        self.name, self.seconds = name, [float(s) for s in seconds]
        self.events = events if events is not None else []
        self.fail_in_round = fail_in_round
        self.batch_size, self.steps_per_round = batch_size, steps_per_round
        self.opened = self.closed = 0

    def open(self, profile, device, rounds):
        variant = self

        class Runner:
            def __init__(self):
                self.round_s: list[float] = []
                self.warm = False

            def __enter__(self):
                variant.opened += 1
                variant.events.append(("open", variant.name))
                return self

            def __exit__(self, *exc_info):
                variant.closed += 1
                variant.events.append(("close", variant.name))

            def warm_up(self):
                self.warm = True

            def next_round(self):
                n = len(self.round_s) + 1
                if n == variant.fail_in_round:
                    raise RuntimeError(f"{variant.name} broke in round {n}")
                variant.events.append(("round", variant.name))
                self.round_s.append(variant.seconds[(n - 1) % len(variant.seconds)])
                return self.round_s[-1]

        return Runner()

    def record(self, runner, *, peak_flops=None, **labels):
        samples = self.batch_size * self.steps_per_round
        return fake_record("", [samples / s for s in runner.round_s],
                           round_s=list(runner.round_s), steps_per_round=self.steps_per_round,
                           batch_size=self.batch_size, peak_flops=peak_flops, **labels)
