"""The typed benchmark record: one frozen, validated record per benchmark.

Every producer builds a :class:`BenchmarkRecord` (the measurement, the input-
only and harness benchmarks) and writes it into pytest-benchmark's
``extra_info`` with :meth:`BenchmarkRecord.to_extra_info`; every reader
(comparisons, reports, plots, A/B pooling, the session summary) gets it back
with :meth:`BenchmarkRecord.from_extra_info` and reads typed fields, never
string keys. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from kbench import _validate, stats
from kbench.counters import Counters, CountersError
from kbench.telemetry import RoundNoise
from kbench.workflows import WorkflowError, WorkflowSpec

# Version of kbench's fields in a benchmark's extra_info ("kbench_schema").
# History:
#   1 (kbench 0.1): workflow, spec, device, batch_size, steps_per_round,
#     startup_s, warmup_s, round_s, samples_per_s, throughput, step_latency_s,
#     loss_start/end, flops_per_sample, achieved/peak_flops, mfu, profile and
#     the suite's labels (suite, comparison, variant, baseline) and numbers
#     (bare_fit_samples_per_s, harness_ratio, replicas; A/B pooling added
#     pooled_from, pooled_by, round_samples_per_s) side by side. Files written
#     before the field existed carry no "kbench_schema" and are read as 1.
#   2: the same measured fields, written by BenchmarkRecord. A suite's own
#     numbers move under "extras"; A/B pooling under "pooling" (sources, unit,
#     round_samples_per_s). The spec carries every WorkflowSpec field
#     (strategy, replicas); a version 1 spec without them takes the defaults.
#     loss_start/loss_end (warm-up vs last round) give way to round_loss (each
#     measured round's mean loss) and invalid (why the benchmark does not count,
#     e.g. the model did not learn while timed); a v1 record keeps its two
#     losses among its extras. round_noise: each measured round's wall and
#     process CPU time and CPU steal (kbench.telemetry).
#   3: lockstep, the comparison group whose variants ran interleaved with this
#     one (kbench.interleaved): round i of every member ran in cycle i, so
#     their ratios are paired. A version 2 record has none (its rounds are
#     not paired with anything).
#   4: counters, the compiled step's exact counters (kbench.counters: traces in
#     all and while timed, XLA-compiled functions, graph sizes), and
#     startup_split (setup, first and steady execution: StartupSplit). Records
#     of versions 1-3 have neither.
#   5: startup_split.tracing_s, TensorFlow's own clock of tf.function tracing
#     over the first execution (kbench.counters.tracing_clock), which splits the
#     first call's excess into tracing and the rest (compile_s). A version 4
#     split has none (None).
RECORD_SCHEMA_VERSION = 5
SUPPORTED_RECORD_SCHEMA_VERSIONS = (1, 2, 3, 4, 5)
SCHEMA_FIELD = "kbench_schema"

LATENCY_QUANTILES = ("p50", "p90", "p99")
# A lockstep id says whose rounds ran pair by pair. In a benchmark session it is the
# comparison group's name (kbench.interleaved): round i of every member ran in
# cycle i, and the same name comes back in every session, so it pairs the records
# of ONE run only. kbench ab's two sides of a workflow ran pair by pair in two
# processes under one id (ab_lockstep_id), which pairs records ACROSS its two runs.
AB_LOCKSTEP_PREFIX = "ab "


def ab_lockstep_id(when: str, workflow: str) -> str:
    """The lockstep id of one kbench ab comparison of ``workflow``, started at ``when``."""
    return f"{AB_LOCKSTEP_PREFIX}{when} {workflow}"


def pairs_across_runs(lockstep: str | None) -> bool:
    """Whether a lockstep id pairs records of two runs (kbench ab's), not of one run only."""
    return lockstep is not None and lockstep.startswith(AB_LOCKSTEP_PREFIX)


# How A/B pools the sessions of a side: one sample per session (its median)
# or every round (see kbench.ab.pool_runs).
POOL_UNITS = ("session", "round")

# extra_info fields of a version 1 record that are labels or measured fields
# of the record; any other field of a v1 record is a suite's own number.
_LABELS = ("suite", "comparison", "variant", "baseline", "profile")
_V1_POOLING = ("pooled_from", "pooled_by", "round_samples_per_s")
# Written for people reading the JSON (and pytest-benchmark compare); derived
# from the record's own fields, so never read back.
_DERIVED = ("workflow", "throughput", "achieved_flops", "mfu")


class RecordError(ValueError):
    """A benchmark record that cannot be built or read; the message names the field and value."""


def _positive_floats(name: str, values: Any, where: str, *, allow_empty: bool = False
                     ) -> tuple[float, ...]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        what = "a list" if allow_empty else "a non-empty list"
        raise RecordError(f"{where}: {name} must be {what} of numbers, got {values!r:.80}")
    values = tuple(values)
    if not values and not allow_empty:
        raise RecordError(f"{where}: {name} must be a non-empty list, got []")
    for value in values:
        if not (_validate.is_number(value) and 0 < value < float("inf")):
            raise RecordError(f"{where}: {name} holds {value!r}, not a positive number")
    return tuple(float(v) for v in values)


@dataclasses.dataclass(frozen=True)
class Latencies:
    """Per-step latency percentiles of the measured steps, in seconds."""

    p50: float
    p90: float
    p99: float

    def __post_init__(self) -> None:
        for q in LATENCY_QUANTILES:
            _validate.check_number(q, getattr(self, q), low=0, low_open=True, error=RecordError,
                                   where="step_latency_s")

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: Any, where: str = "record") -> "Latencies":
        if not isinstance(value, Mapping) or any(q not in value for q in LATENCY_QUANTILES):
            raise RecordError(f"{where}: step_latency_s must map {LATENCY_QUANTILES} to positive "
                              f"seconds, got {value!r:.120}")
        try:
            return cls(**{q: value[q] for q in LATENCY_QUANTILES})
        except RecordError as err:
            raise RecordError(f"{where}: {err}") from None


@dataclasses.dataclass(frozen=True)
class StartupSplit:
    """Where a benchmark's startup went, as far as TensorFlow lets its parts be told
    apart. A step traces and compiles inside its first call, so the first
    execution's excess over a steady one is tracing plus compilation
    (``trace_compile_s``). TensorFlow clocks its own tracing (the time
    ``tf.function`` spends building graphs: kbench.counters.tracing_clock), which
    splits that excess into ``tracing_s`` and ``compile_s``; it times neither
    Grappler's optimization nor XLA's compilation, which stay together in
    ``compile_s``.

    Attributes:
        setup_s: from the run's start to its first step's start (Keras's fit
            setup: data adapter, iterator, callbacks; no tracing yet).
        first_execution_s: the first call of the step: tracing, XLA
            compilation, the graph's first run and the input pipeline's first
            batches.
        execution_s: a steady call of the same steps (the calibration's median).
        tracing_s: TensorFlow's clock of tf.function tracing during the first
            call (None where that TensorFlow has no such clock, or a record of
            schema 4).
    """

    setup_s: float
    first_execution_s: float
    execution_s: float
    tracing_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("setup_s", "first_execution_s", "execution_s"):
            _validate.check_number(name, getattr(self, name), low=0, error=RecordError,
                                   where="startup_split")
        if self.tracing_s is not None:
            _validate.check_number("tracing_s", self.tracing_s, low=0, error=RecordError,
                                   where="startup_split")

    @property
    def trace_compile_s(self) -> float:
        """Tracing and compilation, estimated: the first call's excess over a steady one."""
        return max(0.0, self.first_execution_s - self.execution_s)

    @property
    def compile_s(self) -> float | None:
        """The first call's excess beyond tracing: Grappler's graph optimization, XLA
        compilation, the function's instantiation (None without ``tracing_s``)."""
        if self.tracing_s is None:
            return None
        return max(0.0, self.trace_compile_s - self.tracing_s)

    def parts(self) -> dict[str, float]:
        """The startup's parts in seconds, in the order they happen: setup, then tracing
        and compilation apart where TensorFlow clocked the tracing, together where not."""
        if self.tracing_s is None:
            return {"setup": self.setup_s, "trace+compile": self.trace_compile_s}
        return {"setup": self.setup_s, "tracing": self.tracing_s, "compile": self.compile_s}

    def to_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: Any, where: str = "record") -> "StartupSplit":
        return _validate.from_mapping(cls, "startup_split", value, error=RecordError,
                                      where=where)


@dataclasses.dataclass(frozen=True)
class Pooling:
    """Where an A/B-pooled record's samples came from (kbench.ab.pool_runs).

    Attributes:
        sources: the pooled runs (files or labels), in the order they ran.
        unit: "session" (samples_per_s holds one median per run) or "round".
        round_samples_per_s: every pooled round, for the record of the rounds.
    """

    sources: tuple[str, ...]
    unit: str
    round_samples_per_s: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _validate.check_choice("pooling unit", self.unit, POOL_UNITS, error=RecordError)
        sources = tuple(self.sources)
        if not sources or not all(isinstance(s, str) for s in sources):
            raise RecordError(f"pooling sources must be a non-empty list of str, got {sources!r}")
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "round_samples_per_s", _positive_floats(
            "round_samples_per_s", self.round_samples_per_s, "pooling", allow_empty=True))

    def to_dict(self) -> dict:
        return {"sources": list(self.sources), "unit": self.unit,
                "round_samples_per_s": list(self.round_samples_per_s)}


_EXTRA_TYPES = (str, bool, int, float)


@dataclasses.dataclass(frozen=True)
class BenchmarkRecord:
    """One benchmark's result. Validated on construction; immutable.

    Attributes:
        samples_per_s: throughput of each measured round (higher is better).
        batch_size: examples per step.
        spec: the workflow measured (None for a benchmark of no workflow).
        device: the TF device (e.g. "/CPU:0"), or "host" for input pipelines.
        steps_per_round: steps in each round.
        round_s: each measured round's duration, device synced.
        startup_s: from the run's start to the end of its first step.
        startup_split: that startup's parts (StartupSplit), or None.
        warmup_s: duration of the unmeasured warm-up rounds.
        step_latency_s: per-step latency percentiles.
        round_loss: the mean training loss of each measured round.
        round_noise: each measured round's telemetry: wall and process CPU
            time, and the share of the machine's CPU stolen (kbench.telemetry).
        invalid: why this benchmark does not count (e.g. the model did not learn
            while timed, or its step retraced), or None; comparisons refuse an
            invalid record.
        counters: the exact counters of the training run (kbench.counters), or
            None (an input-only benchmark, or a record older than version 4).
        flops_per_sample: approximate training FLOPs per example.
        peak_flops: the device's probed matmul FLOP/s.
        profile: the benchmark profile.
        suite, comparison, variant, baseline: labels; ``comparison`` names the
            group compared within one run, ``variant`` this member, ``baseline``
            the member the others are divided by.
        lockstep: whose rounds this record's ran pair by pair with: its group's name
            in a benchmark session (records of the same run), kbench ab's
            ab_lockstep_id (the other side's record in the other run), or None.
        extras: a suite's own numbers (e.g. bare_fit_samples_per_s), read-only.
        pooling: set on A/B-pooled records.
        key: the benchmark's name in a stored run (pytest's test name with
            parameters); "" before pytest-benchmark names it.
        group: pytest-benchmark's group, if any.
        schema_version: the version it was read as (written: the current one).
    """

    samples_per_s: tuple[float, ...]
    batch_size: int
    spec: WorkflowSpec | None = None
    device: str | None = None
    steps_per_round: int | None = None
    round_s: tuple[float, ...] = ()
    startup_s: float | None = None
    startup_split: StartupSplit | None = None
    warmup_s: float | None = None
    step_latency_s: Latencies | None = None
    round_loss: tuple[float, ...] = ()
    round_noise: tuple[RoundNoise, ...] = ()
    invalid: str | None = None
    counters: Counters | None = None
    flops_per_sample: int | None = None
    peak_flops: float | None = None
    profile: str | None = None
    suite: str | None = None
    comparison: str | None = None
    variant: str | None = None
    baseline: str | None = None
    lockstep: str | None = None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pooling: Pooling | None = None
    key: str = ""
    group: str | None = None
    schema_version: int = RECORD_SCHEMA_VERSION

    def __post_init__(self) -> None:
        where = self.key or "benchmark record"
        set_ = functools.partial(object.__setattr__, self)
        set_("samples_per_s", _positive_floats("samples_per_s", self.samples_per_s, where))
        set_("round_s", _positive_floats("round_s", self.round_s, where, allow_empty=True))
        _validate.check_positive_int("batch_size", self.batch_size, error=RecordError, where=where)
        for name, minimum in (("steps_per_round", 1), ("flops_per_sample", 0)):
            if getattr(self, name) is not None:
                _validate.check_int(name, getattr(self, name), minimum=minimum,
                                    error=RecordError, where=where)
        set_("round_loss", tuple(_validate.check_number("round_loss", v, error=RecordError,
                                                        where=where) for v in self.round_loss))
        for name in ("startup_s", "warmup_s", "peak_flops"):
            if getattr(self, name) is not None:
                set_(name, _validate.check_number(name, getattr(self, name), error=RecordError,
                                                  where=where))
        for name in ("device", "profile", "suite", "comparison", "variant", "baseline", "group",
                     "invalid", "lockstep"):
            if getattr(self, name) is not None:
                _validate.check_str(name, getattr(self, name), error=RecordError, where=where)
        set_("round_noise", tuple(self.round_noise))
        if not all(isinstance(n, RoundNoise) for n in self.round_noise):
            raise RecordError(f"{where}: round_noise must hold kbench.telemetry.RoundNoise "
                              f"records, got {self.round_noise!r:.120}")
        self._check_types(where)
        set_("extras", MappingProxyType(dict(self.extras)))
        _validate.check_version("schema_version", self.schema_version,
                                SUPPORTED_RECORD_SCHEMA_VERSIONS, error=RecordError)

    def _check_types(self, where: str) -> None:
        typed = (("spec", WorkflowSpec), ("step_latency_s", Latencies), ("pooling", Pooling),
                 ("counters", Counters), ("startup_split", StartupSplit))
        for name, kind in typed:
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise RecordError(f"{where}: {name} must be a {kind.__name__} or None, "
                                  f"got {value!r:.80}")
        if not isinstance(self.key, str):
            raise RecordError(f"{where}: key must be a str, got {self.key!r}")
        if not isinstance(self.extras, Mapping):
            raise RecordError(f"{where}: extras must be a mapping, got {self.extras!r:.80}")
        for name, value in self.extras.items():
            if not isinstance(name, str) or not isinstance(value, _EXTRA_TYPES):
                raise RecordError(f"{where}: extras[{name!r}] must be a str, bool or number, "
                                  f"got {value!r:.80}")

    # ----------------------------------------------------------------- derived

    @property
    def workflow(self) -> str | None:
        """The workflow's name, if the record has a spec."""
        return self.spec.name if self.spec is not None else None

    @functools.cached_property
    def throughput(self) -> stats.Summary:
        """Median samples/s with its bootstrap CI, spread across rounds."""
        return stats.summarize(self.samples_per_s)

    @property
    def achieved_flops(self) -> float | None:
        if self.flops_per_sample is None:
            return None
        return self.throughput.median * self.flops_per_sample

    @property
    def mfu(self) -> float | None:
        """Achieved FLOP/s over the probed peak (model FLOPs utilisation)."""
        achieved = self.achieved_flops
        return achieved / self.peak_flops if achieved is not None and self.peak_flops else None

    def field(self, path: str) -> Any:
        """A field by dotted attribute path, e.g. ``"spec.execution"``; AttributeError if absent."""
        node: Any = self
        for part in path.split("."):
            if node is None:
                raise AttributeError(path)
            node = getattr(node, part)
        return node

    def replace(self, **changes) -> "BenchmarkRecord":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- JSON

    def to_extra_info(self) -> dict:
        """The record as pytest-benchmark ``extra_info`` (plain JSON values)."""
        out: dict[str, Any] = {SCHEMA_FIELD: RECORD_SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            if f.name in ("key", "group", "schema_version"):
                continue  # the entry's name and group are pytest-benchmark's own fields
            value = getattr(self, f.name)
            if value is None:
                continue
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        out.update(workflow=self.workflow, throughput=self.throughput.to_dict(),
                   achieved_flops=self.achieved_flops, mfu=self.mfu)
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_extra_info(cls, extra: Mapping, *, key: str = "", group: str | None = None
                        ) -> "BenchmarkRecord":
        """The record stored in ``extra`` (schema version 1 to 4).

        Raises:
            RecordError: naming the benchmark, the field and the bad value.
        """
        where = key or "benchmark record"
        if not isinstance(extra, Mapping):
            raise RecordError(f"{where}: extra_info must be an object, got {extra!r:.80}")
        version = extra.get(SCHEMA_FIELD, 1)
        _validate.check_version(SCHEMA_FIELD, version, SUPPORTED_RECORD_SCHEMA_VERSIONS,
                                error=RecordError, where=where)
        fields = {k: v for k, v in extra.items() if k not in (SCHEMA_FIELD, *_DERIVED)}
        if version == 1:
            fields = _v1_fields(fields)
        unknown = sorted(set(fields) - _FIELD_NAMES)
        if unknown:
            raise RecordError(f"{where}: unknown record field(s) {unknown}")
        for name in ("samples_per_s", "batch_size"):
            if name not in fields:
                raise RecordError(f"{where}: the record has no {name}")
        try:
            if fields.get("spec") is not None:
                fields["spec"] = WorkflowSpec.from_dict(fields["spec"])
        except WorkflowError as err:
            raise RecordError(f"{where}: bad spec: {err}") from None
        if fields.get("step_latency_s") is not None:
            fields["step_latency_s"] = Latencies.from_dict(fields["step_latency_s"], where)
        if fields.get("pooling") is not None:
            fields["pooling"] = _pooling_from(fields["pooling"], where)
        if "round_noise" in fields:
            fields["round_noise"] = _noise_from(fields["round_noise"], where)
        if fields.get("startup_split") is not None:
            fields["startup_split"] = StartupSplit.from_dict(fields["startup_split"], where)
        if fields.get("counters") is not None:
            try:
                fields["counters"] = Counters.from_dict(fields["counters"], where)
            except CountersError as err:
                raise RecordError(str(err)) from None
        return cls(**fields, key=key, group=group, schema_version=version)


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(BenchmarkRecord)) - {
    "key", "group", "schema_version"}


def _pooling_from(value: Any, where: str) -> Pooling:
    if not isinstance(value, Mapping):
        raise RecordError(f"{where}: pooling must be an object, got {value!r:.80}")
    try:
        return Pooling(**value)
    except (TypeError, RecordError) as err:
        raise RecordError(f"{where}: bad pooling {dict(value)!r:.120}: {err}") from None


def _noise_from(value: Any, where: str) -> tuple[RoundNoise, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise RecordError(f"{where}: round_noise must be a list of objects, got {value!r:.80}")
    try:
        return tuple(RoundNoise(**item) for item in value)
    except (TypeError, ValueError) as err:
        raise RecordError(f"{where}: bad round_noise {value!r:.120}: {err}") from None


def _v1_fields(fields: dict) -> dict:
    """A version 1 extra_info's fields in version 2's shape."""
    measured = _FIELD_NAMES - {"extras", "pooling"}
    out = {k: v for k, v in fields.items() if k in measured or k in _LABELS}
    if "pooled_by" in fields:
        out["pooling"] = {"sources": fields.get("pooled_from", []), "unit": fields["pooled_by"],
                          "round_samples_per_s": fields.get("round_samples_per_s", [])}
    out["extras"] = {k: v for k, v in fields.items()
                     if k not in out and k not in _V1_POOLING}
    return out
