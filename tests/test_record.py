"""Tests for kbench.record: the typed benchmark record, its validation and its JSON."""

import dataclasses
import json
from pathlib import Path

import pytest

from kbench import record, testing
from kbench.counters import Counters
from kbench.record import BenchmarkRecord, Latencies, Pooling, RecordError, StartupSplit
from kbench.telemetry import RoundNoise
from kbench.workflows import WorkflowSpec

REPO = Path(__file__).resolve().parents[1]
# Every stored file the project ever wrote: the v1 test input and the committed example runs.
STORED_FILES = sorted([*REPO.glob("tests/data/results/*.json"),
                       *REPO.glob("reports/examples/**/runs/**/*.json"),
                       *REPO.glob("reports/examples/**/smoke/**/*.json")])


def full_record(**changes) -> BenchmarkRecord:
    fields = dict(samples_per_s=(1000.0, 1100.0, 900.0), batch_size=32,
                  spec=WorkflowSpec(family="cnn", loop="custom", batch_size=32), device="/CPU:0",
                  steps_per_round=20, round_s=(0.64, 0.58, 0.71), startup_s=1.5,
                  startup_split=StartupSplit(0.3, 1.2, 0.03, tracing_s=0.4), warmup_s=0.6,
                  step_latency_s=Latencies(0.03, 0.04, 0.05), round_loss=(2.3, 1.7, 1.1),
                  round_noise=(RoundNoise(0.65, 1.2, 0.01), RoundNoise(0.59, 1.1, None),
                               RoundNoise(0.72, 1.0, 0.3)),
                  flops_per_sample=1000, peak_flops=1e11, profile="default", suite="loops",
                  comparison="loop cnn b32 /CPU:0", variant="custom", baseline="fit",
                  lockstep="loop cnn b32 /CPU:0",
                  counters=Counters(traces={"_train_step": 1, "_replica_train_step": 1},
                                    retraces={"_train_step": 0, "_replica_train_step": 0},
                                    graph_nodes={"_train_step": 341},
                                    xla_functions=("_replica_train_step",)),
                  extras={"bare_fit_samples_per_s": 1050.0, "note": "x"},
                  pooling=Pooling(("a.json", "b.json"), "session", (1.0, 2.0)),
                  key="test_loop_throughput[cpu-b32-cnn-custom]", group="loop cnn b32 /CPU:0")
    return BenchmarkRecord(**{**fields, **changes})


def test_every_field_round_trips_through_extra_info_and_json():
    original = full_record()
    extra = json.loads(json.dumps(original.to_extra_info()))
    assert extra[record.SCHEMA_FIELD] == record.RECORD_SCHEMA_VERSION
    back = BenchmarkRecord.from_extra_info(extra, key=original.key, group=original.group)
    assert back == original
    assert back.spec.family == "cnn" and back.step_latency_s.p90 == 0.04


def test_derived_fields_are_written_for_readers_but_computed_from_the_record():
    rec = full_record()
    extra = rec.to_extra_info()
    assert extra["workflow"] == rec.spec.name == "cnn-functional-custom-function-fp32"
    assert extra["throughput"]["median"] == rec.throughput.median == 1000.0
    assert rec.achieved_flops == 1000.0 * 1000 and rec.mfu == pytest.approx(1e6 / 1e11)
    extra["throughput"]["median"] = 1.0  # a stale copy in the file is never read back
    assert BenchmarkRecord.from_extra_info(extra).throughput.median == 1000.0


@pytest.mark.parametrize("path", STORED_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_stored_file_reads_and_rewrites_to_the_same_record(path):
    document = json.loads(path.read_text())
    assert document["benchmarks"]
    for entry in document["benchmarks"]:
        rec = BenchmarkRecord.from_extra_info(entry["extra_info"], key=entry["name"],
                                              group=entry["group"])
        assert rec.samples_per_s == tuple(entry["extra_info"]["samples_per_s"])
        again = BenchmarkRecord.from_extra_info(rec.to_extra_info(), key=rec.key, group=rec.group)
        assert again == dataclasses.replace(rec, schema_version=record.RECORD_SCHEMA_VERSION)


def test_the_lockstep_group_round_trips_through_extra_info():
    rec = testing.fake_record("k", [1000.0, 900.0], lockstep="g")
    extra = json.loads(json.dumps(rec.to_extra_info()))
    assert extra["lockstep"] == "g" and extra[record.SCHEMA_FIELD] == 5
    assert BenchmarkRecord.from_extra_info(extra, key="k").lockstep == "g"
    assert "lockstep" not in testing.fake_record("k", [1000.0]).to_extra_info()


def test_a_version_2_record_has_no_lockstep_group_and_is_rewritten_as_the_current_version():
    v2 = {**full_record(lockstep=None).to_extra_info(), record.SCHEMA_FIELD: 2}
    assert "lockstep" not in v2
    rec = BenchmarkRecord.from_extra_info(v2, key="k")
    assert rec.schema_version == 2 and rec.lockstep is None
    assert rec.samples_per_s == (1000.0, 1100.0, 900.0)
    assert rec.to_extra_info()[record.SCHEMA_FIELD] == record.RECORD_SCHEMA_VERSION == 5


def test_a_version_4_startup_split_has_no_tracing_and_keeps_tracing_with_compilation():
    v4 = full_record().to_extra_info()
    v4[record.SCHEMA_FIELD] = 4
    del v4["startup_split"]["tracing_s"]
    split = BenchmarkRecord.from_extra_info(v4, key="k").startup_split
    assert split == StartupSplit(0.3, 1.2, 0.03) and split.tracing_s is None
    assert split.compile_s is None and split.trace_compile_s == pytest.approx(1.17)
    traced = full_record().startup_split
    assert (traced.tracing_s, traced.compile_s) == (0.4, pytest.approx(0.77))


def test_a_version_1_record_keeps_suite_numbers_and_pooling():
    v1 = {"samples_per_s": [2.0, 3.0], "batch_size": 64, "bare_fit_samples_per_s": 900.0,
          "harness_ratio": 1.01, "pooled_from": ["a", "b"], "pooled_by": "session",
          "round_samples_per_s": [1.0, 2.0, 3.0, 4.0], "workflow": "ignored: derived"}
    rec = BenchmarkRecord.from_extra_info(v1)
    assert rec.schema_version == 1 and rec.spec is None
    assert dict(rec.extras) == {"bare_fit_samples_per_s": 900.0, "harness_ratio": 1.01}
    old = BenchmarkRecord.from_extra_info({**v1, "loss_start": 2.3, "loss_end": 0.9})
    assert (old.extras["loss_start"], old.extras["loss_end"], old.round_loss) == (2.3, 0.9, ())
    assert rec.pooling == Pooling(("a", "b"), "session", (1.0, 2.0, 3.0, 4.0))


@pytest.mark.parametrize("changes, quoted", [
    ({"samples_per_s": ()}, "samples_per_s must be a non-empty list, got []"),
    ({"samples_per_s": (1.0, -2.0)}, "holds -2.0, not a positive number"),
    ({"samples_per_s": "fast"}, "'fast'"),
    ({"round_s": (0.0,)}, "round_s holds 0.0"),
    ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
    ({"batch_size": True}, "got True"),
    ({"steps_per_round": 0}, "steps_per_round must be a positive int, got 0"),
    ({"startup_s": float("nan")}, "startup_s must be a finite number, got nan"),
    ({"round_loss": (1.0, float("inf"))}, "round_loss must be a finite number, got inf"),
    ({"invalid": ""}, "invalid must be a non-empty str, got ''"),
    ({"round_noise": ({"wall_s": 1.0},)}, "round_noise must hold kbench.telemetry.RoundNoise"),
    ({"device": ""}, "device must be a non-empty str, got ''"),
    ({"spec": {"family": "mlp"}}, "spec must be a WorkflowSpec or None"),
    ({"step_latency_s": {"p50": 1}}, "step_latency_s must be a Latencies or None"),
    ({"extras": {"x": [1, 2]}}, "extras['x'] must be a str, bool or number, got [1, 2]"),
    ({"schema_version": 6}, "schema_version must be one of (1, 2, 3, 4, 5), got 6"),
    ({"counters": {"traces": {"f": 1}}}, "counters must be a Counters or None"),
    ({"lockstep": 3}, "lockstep must be a non-empty str, got 3"),
    ({"lockstep": ""}, "lockstep must be a non-empty str, got ''"),
])
def test_bad_fields_are_refused_naming_the_benchmark_and_the_value(changes, quoted):
    with pytest.raises(RecordError) as info:
        full_record(**changes)
    assert quoted in str(info.value)
    assert str(info.value).startswith("test_loop_throughput[cpu-b32-cnn-custom]: ") \
        or "schema_version" in quoted


@pytest.mark.parametrize("edit, quoted", [
    (lambda e: e.update(kbench_schema=9), "kbench_schema must be one of (1, 2, 3, 4, 5), got 9"),
    (lambda e: e.update(counters={"traces": {"f": 1}, "retraces": {"f": 2}}),
     "'f' retraced 2 times while timed but traced 1 times in all"),
    (lambda e: e.update(counters=[1]), "counters must be an object, got [1]"),
    (lambda e: e.update(startup_split={"setup_s": -1, "first_execution_s": 1,
                                       "execution_s": 1}),
     "startup_split: setup_s must be a finite number >= 0, got -1"),
    (lambda e: e.update(startup_split=[1]), "startup_split must be an object, got [1]"),
    (lambda e: e["startup_split"].update(tracing_s="x"),
     "startup_split: tracing_s must be a finite number >= 0, got 'x'"),
    (lambda e: e.update(lockstep=["g"]), "lockstep must be a non-empty str, got ['g']"),
    (lambda e: e.update(colour="red"), "unknown record field(s) ['colour']"),
    (lambda e: e.pop("batch_size"), "the record has no batch_size"),
    (lambda e: e["spec"].update(family="rnn"), "bad spec: family must be one of"),
    (lambda e: e["spec"].update(name="mlp-x"), "spec name 'mlp-x' does not match its fields"),
    (lambda e: e.update(step_latency_s={"p50": 0.1}), "step_latency_s must map"),
    (lambda e: e["step_latency_s"].update(p99=-1), "p99 must be a positive finite number, got -1"),
    (lambda e: e["pooling"].update(unit="day"), "pooling unit must be one of"),
    (lambda e: e["round_noise"][1].update(steal=2.0), "bad round_noise"),
    (lambda e: e.update(round_noise={"wall_s": 1}), "round_noise must be a list of objects"),
])
def test_stored_records_that_cannot_be_read_say_which_field(edit, quoted):
    extra = full_record().to_extra_info()
    edit(extra)
    with pytest.raises(RecordError) as info:
        BenchmarkRecord.from_extra_info(extra, key="k")
    assert quoted in str(info.value) and str(info.value).startswith("k: ")


def test_field_reads_dotted_paths_and_replace_validates():
    rec = testing.fake_record("k", [1.0, 2.0], spec={"execution": "xla"})
    assert rec.field("spec.execution") == "xla" and rec.field("batch_size") == 64
    assert testing.fake_record("k", [1.0], spec=None).field("spec") is None
    with pytest.raises(AttributeError):
        testing.fake_record("k", [1.0], spec=None).field("spec.loop")
    with pytest.raises(RecordError, match="batch_size"):
        rec.replace(batch_size=-1)
