"""Tests for kbench.results: records, the store layout, atomic writes, reading and
scanning stored runs, and how the benchmark session stores its run."""

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbench import _files, record, results
from kbench.workflows import WorkflowSpec

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "results"
# A real smoke-profile run written by the suite before kbench_schema existed
# (a version 1 file), trimmed to five benchmarks; see DATA/README.md.
V1_RUN = DATA / "v1-smoke-run.json"
V1_TF, V1_MACHINE = "2.21.0", "cpu-amd-epyc-2c"


def v1_document() -> dict:
    return json.loads(V1_RUN.read_text())


def document(datetime="2026-11-23T10:37:27.027204+00:00", *, tf=V1_TF, machine=V1_MACHINE,
             scale=1.0) -> dict:
    """The stored v1 run as a fresh document, re-dated and moved to another TF/machine;
    ``scale`` multiplies every throughput (so different runs hold different numbers)."""
    doc = v1_document()
    doc["datetime"] = datetime
    fp = doc["machine_info"]["kbench"]
    fp["software"]["tensorflow"], fp["machine_key"] = tf, machine
    for bench in doc["benchmarks"]:
        extra = bench["extra_info"]
        extra["samples_per_s"] = [s * scale for s in extra["samples_per_s"]]
    return doc


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, temporary and hidden ones included."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def assert_unreadable(path: Path, *words: str) -> None:
    """read_run refuses ``path`` with an error that names the file and says why."""
    with pytest.raises(results.UnreadableRunError) as info:
        results.read_run(path)
    assert str(path) in str(info.value) and info.value.path == str(path)
    for word in words:
        assert word in info.value.reason


# --------------------------------------------------------------------------- reading


def test_stored_version_1_file_reads():
    raw = v1_document()
    assert not any(record.SCHEMA_FIELD in b["extra_info"] for b in raw["benchmarks"])
    run = results.read_run(V1_RUN)
    assert (run.tf_version, run.machine_key, run.source) == (V1_TF, V1_MACHINE, str(V1_RUN))
    assert run.datetime == raw["datetime"]
    assert set(run.results) == {b["name"] for b in raw["benchmarks"]}
    for bench in raw["benchmarks"]:
        result = run.results[bench["name"]]
        assert result.schema_version == 1
        assert result.samples_per_s == tuple(bench["extra_info"]["samples_per_s"])
        assert result.group == bench["group"]
        assert result.batch_size == 64
        spec = bench["extra_info"].get("spec")
        if spec is not None:  # typed, with the fields v1 lacked at their defaults
            assert result.spec == WorkflowSpec.from_dict(spec)
            assert result.spec.name == bench["extra_info"]["workflow"]
            assert (result.spec.strategy, result.spec.replicas) == ("default", None)


def test_current_schema_field_reads_and_unknown_versions_are_refused(tmp_path):
    doc = document()
    for bench in doc["benchmarks"]:  # rewritten as this kbench writes records
        bench["extra_info"] = record.BenchmarkRecord.from_extra_info(
            bench["extra_info"]).to_extra_info()
        assert bench["extra_info"][record.SCHEMA_FIELD] == record.RECORD_SCHEMA_VERSION
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    assert {r.schema_version for r in results.read_run(good).results.values()} \
        == {record.RECORD_SCHEMA_VERSION}

    doc["benchmarks"][1]["extra_info"][record.SCHEMA_FIELD] = 99
    future = tmp_path / "future.json"
    future.write_text(json.dumps(doc))
    assert_unreadable(future, record.SCHEMA_FIELD, "99", doc["benchmarks"][1]["name"])


@pytest.mark.parametrize("text, words", [
    ("", ["empty file"]),
    ("{\"machine_info\": {\"kbench\": ", ["truncated"]),
    ("{\"a\": 1,, }", ["not valid JSON", "line 1"]),
    (json.dumps({"machine_info": {}, "benchmarks": [], "datetime": "2026-01-01T00:00:00"}),
     ["not a kbench run"]),
    (json.dumps({"benchmarks": []}), ["not a pytest-benchmark JSON document"]),
    (json.dumps([1, 2]), ["not a pytest-benchmark JSON object"]),
])
def test_unreadable_files_name_the_file_and_the_cause(tmp_path, text, words):
    path = tmp_path / "run.json"
    path.write_text(text)
    assert_unreadable(path, *words)


def test_missing_and_binary_files_are_unreadable(tmp_path):
    assert_unreadable(tmp_path / "absent.json", "cannot read")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert_unreadable(binary, "not UTF-8")


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.update(benchmarks={"a": 1}), ["benchmarks must be a list"]),
    (lambda d: d.update(machine_info=["x"]), ["machine_info must be an object"]),
    (lambda d: d.update(datetime="yesterday"), ["ISO 8601", "'yesterday'"]),
    (lambda d: d["benchmarks"][0].update(extra_info=[1]), ["extra_info must be an object"]),
    (lambda d: d["benchmarks"][0]["extra_info"].update(samples_per_s=[0.0]), ["not a positive"]),
    (lambda d: d["benchmarks"][0]["extra_info"].update(samples_per_s="fast"),
     ["non-empty list", "'fast'"]),
    (lambda d: d["machine_info"]["kbench"].pop("machine_key"), ["bad fingerprint"]),
])
def test_malformed_runs_are_refused_naming_the_value(edit, words):
    doc = document()
    edit(doc)
    with pytest.raises(results.ResultsError) as info:
        results.run_from_json(doc, source="some.json")
    for word in words:
        assert word in str(info.value)


def test_run_timestamps_are_utc_and_naive_means_utc():
    fp = v1_document()["machine_info"]["kbench"]
    aware = results.Run(datetime="2026-11-23T12:00:00+02:00", fingerprint=fp, results={})
    naive = results.Run(datetime="2026-11-23T10:00:00", fingerprint=fp, results={})
    zulu = results.Run(datetime="2026-11-23T10:00:00Z", fingerprint=fp, results={})
    expected = dt.datetime(2026, 11, 23, 10, tzinfo=dt.timezone.utc)
    assert aware.timestamp == naive.timestamp == zulu.timestamp == expected


# --------------------------------------------------------------------------- layout


def test_store_dir_prefers_explicit_then_environment_then_default(tmp_path):
    env = {results.STORE_ENV: "/from/env"}
    assert results.store_dir("/explicit", environ=env) == Path("/explicit")
    assert results.store_dir(None, environ=env) == Path("/from/env")
    assert results.store_dir("", environ=env) == Path("/from/env")
    assert results.store_dir(None, environ={results.STORE_ENV: " "}) == Path(results.DEFAULT_STORE)
    assert results.store_dir(None, environ={}) == Path(results.DEFAULT_STORE)
    assert results.store_dir(None, environ={}, root=tmp_path) == tmp_path / results.DEFAULT_STORE
    assert results.store_dir("rel", environ={}, root=tmp_path) == Path("rel")


def test_store_dir_reads_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(results.STORE_ENV, str(tmp_path))
    assert results.store_dir() == tmp_path
    monkeypatch.delenv(results.STORE_ENV)
    assert results.store_dir() == Path(results.DEFAULT_STORE)


def test_run_path_is_tf_version_then_machine_then_utc_time(tmp_path):
    fp = document()["machine_info"]["kbench"]
    path = results.run_path(tmp_path, fp, "2026-11-23T11:37:27.027204+01:00")
    assert path == tmp_path / V1_TF / V1_MACHINE / "20261123T103727.027204Z.json"


@pytest.mark.parametrize("tf, machine, datetime, words", [
    ("../2.21", V1_MACHINE, "2026-11-23T10:00:00", ["software.tensorflow", "'../2.21'"]),
    (V1_TF, "cpu/x", "2026-11-23T10:00:00", ["machine_key", "'cpu/x'"]),
    (V1_TF, "", "2026-11-23T10:00:00", ["machine_key", "''"]),
    (V1_TF, V1_MACHINE, "23/11/2026", ["ISO 8601", "'23/11/2026'"]),
])
def test_run_path_refuses_values_that_cannot_be_a_path(tmp_path, tf, machine, datetime, words):
    fp = document(tf=tf, machine=machine)["machine_info"]["kbench"]
    with pytest.raises(results.ResultsError) as info:
        results.run_path(tmp_path, fp, datetime)
    for word in words:
        assert word in str(info.value)


# Any moment pytest-benchmark could stamp, in any UTC offset a machine could use.
moments = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                       timezones=st.sampled_from([dt.timezone(dt.timedelta(hours=h))
                                                  for h in (-12, -5, 0, 1, 9, 14)]))


@given(a=moments, b=moments)
def test_file_names_sort_as_the_runs_happened(a, b):
    fp = v1_document()["machine_info"]["kbench"]
    name_a = results.run_path("s", fp, a.isoformat()).name
    name_b = results.run_path("s", fp, b.isoformat()).name
    assert (name_a < name_b) == (a < b) and (name_a == name_b) == (a == b)


# --------------------------------------------------------------------------- writing


def test_write_run_stores_the_document_where_run_path_says(tmp_path):
    doc = document()
    path = results.write_run(doc, tmp_path)
    fp = doc["machine_info"]["kbench"]
    assert path == results.run_path(tmp_path, fp, doc["datetime"])
    assert json.loads(path.read_text()) == doc
    assert files_under(tmp_path) == [path]
    run = results.read_run(path)
    assert run.results.keys() == results.run_from_json(doc).results.keys()


def test_write_run_uses_the_configured_store(tmp_path, monkeypatch):
    monkeypatch.setenv(results.STORE_ENV, str(tmp_path / "env-store"))
    path = results.write_run(document())
    assert path.is_relative_to(tmp_path / "env-store")


def test_write_run_validates_before_touching_the_disk(tmp_path):
    doc = document()
    del doc["machine_info"]["kbench"]
    with pytest.raises(results.ResultsError, match="not a kbench run"):
        results.write_run(doc, tmp_path)
    unencodable = document()
    unencodable["benchmarks"][0]["extra_info"]["when"] = dt.date(2026, 1, 1)
    with pytest.raises(results.ResultsError, match="date"):
        results.write_run(unencodable, tmp_path)
    assert files_under(tmp_path) == []


def test_write_run_never_overwrites_a_different_run(tmp_path):
    first = results.write_run(document(), tmp_path)
    original = first.read_bytes()
    assert results.write_run(document(), tmp_path) == first  # the same run again
    with pytest.raises(results.ResultsError, match="already holds a different run"):
        results.write_run(document(scale=2.0), tmp_path)
    assert first.read_bytes() == original
    assert files_under(tmp_path) == [first]


def interrupt(fd):
    raise KeyboardInterrupt


def test_an_interrupted_write_leaves_earlier_results_and_no_partial_file(tmp_path):
    earlier = results.write_run(document("2026-11-23T10:00:00+00:00"), tmp_path)
    content = earlier.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        results.write_run(document("2026-11-23T11:00:00+00:00"), tmp_path, fsync=interrupt)
    with pytest.raises(KeyboardInterrupt):  # replacing a file: the old bytes stay
        _files.atomic_write_bytes(earlier, b"{\"half\": ", fsync=interrupt)
    assert files_under(tmp_path) == [earlier]
    assert earlier.read_bytes() == content


# Child process for the test below: writes a run, then hangs inside fsync (the
# data is in the temporary file, not yet renamed) until it is killed.
_HANG_IN_FSYNC = """
import json, sys, time
from pathlib import Path
from kbench import results

def hang(fd):
    Path(sys.argv[3]).touch()
    time.sleep(60)

results.write_run(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2], fsync=hang)
"""
# How long a child may take to import kbench.results and reach fsync; it needs
# about 0.3 s here. Generous, as other work shares the 2 cores.
CHILD_READY_TIMEOUT_S = 30.0


def test_a_killed_writer_leaves_earlier_results_and_nothing_at_a_final_name(tmp_path):
    store = tmp_path / "store"
    earlier = results.write_run(document("2026-11-23T10:00:00+00:00"), store)
    later = document("2026-11-23T11:00:00+00:00")
    (tmp_path / "later.json").write_text(json.dumps(later))
    ready = tmp_path / "in-fsync"
    child = subprocess.Popen([sys.executable, "-c", _HANG_IN_FSYNC, str(tmp_path / "later.json"),
                              str(store), str(ready)], cwd=REPO)
    try:
        deadline = time.monotonic() + CHILD_READY_TIMEOUT_S
        while not ready.exists():
            assert child.poll() is None, f"writer exited early with {child.returncode}"
            assert time.monotonic() < deadline, "writer never reached fsync"
            time.sleep(0.01)
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait()
    final = results.run_path(store, later["machine_info"]["kbench"], later["datetime"])
    assert not final.exists()
    leftovers = [p for p in files_under(store) if p != earlier]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")  # the dead write's
    runs, problems = results.scan([store])
    assert [r.source for r in runs] == [str(earlier)] and problems == []


# --------------------------------------------------------------------------- scanning


@pytest.fixture
def store(tmp_path):
    """A store with three good runs (two TF versions, two machines) and four bad files."""
    root = tmp_path / "store"
    for datetime, tf, machine in [("2026-11-23T12:00:00+00:00", "2.21.0", "cpu-a-2c"),
                                  ("2026-11-23T10:00:00+00:00", "2.21.0", "cpu-a-2c"),
                                  ("2026-11-23T11:00:00+00:00", "2.20.0", "gpu-b-x1")]:
        results.write_run(document(datetime, tf=tf, machine=machine), root)
    bad = root / "2.21.0" / "cpu-a-2c"
    good_text = json.dumps(document("2026-11-23T13:00:00+00:00"), indent=4)
    (bad / "truncated.json").write_text(good_text[: len(good_text) // 2])
    (bad / "other-tool.json").write_text(json.dumps({"machine_info": {}, "benchmarks": [],
                                                     "datetime": "2026-11-23T10:00:00"}))
    future = document("2026-11-23T14:00:00+00:00")
    future["benchmarks"][0]["extra_info"][record.SCHEMA_FIELD] = 99
    (bad / "future.json").write_text(json.dumps(future))
    (root / "notes.json").write_text("not json at all")
    (root / "README.md").write_text("not a run, not *.json: never read")
    return root


def test_scan_reads_good_runs_oldest_first_and_reports_every_bad_file(store):
    runs, problems = results.scan([store])
    assert [r.datetime[:13] for r in runs] == ["2026-11-23T10", "2026-11-23T11", "2026-11-23T12"]
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert set(reasons) == {"truncated.json", "other-tool.json", "future.json", "notes.json"}
    assert "truncated" in reasons["truncated.json"]
    assert "not a kbench run" in reasons["other-tool.json"]
    assert record.SCHEMA_FIELD in reasons["future.json"] and "99" in reasons["future.json"]
    assert "not valid JSON" in reasons["notes.json"]
    for problem in problems:
        assert Path(problem.path).is_file()
        assert str(problem) == f"{problem.path}: {problem.reason}"


def test_scan_without_sources_reads_the_store(store, monkeypatch, tmp_path):
    monkeypatch.setenv(results.STORE_ENV, str(store))
    runs, problems = results.scan()
    assert len(runs) == 3 and len(problems) == 4
    monkeypatch.setenv(results.STORE_ENV, str(tmp_path / "no-runs-yet"))
    assert results.scan() == ([], [])


def test_scan_takes_files_folders_and_globs_and_reads_each_file_once(store):
    one = next((store / "2.20.0").rglob("*.json"))
    runs, problems = results.scan([one, store / "2.20.0", str(store / "2.2*" / "gpu-*" / "*.json")])
    assert [r.source for r in runs] == [str(one)] and problems == []
    runs, _ = results.scan(str(store / "**" / "2026*.json"))
    assert len(runs) == 3
    runs, problems = results.scan(store / "2.21.0" / "cpu-a-2c" / "future.json")
    assert runs == [] and [Path(p.path).name for p in problems] == ["future.json"]


def test_scan_reports_sources_that_name_nothing(tmp_path):
    missing, pattern = tmp_path / "absent.json", str(tmp_path / "none-*.json")
    runs, problems = results.scan([missing, pattern])
    assert runs == []
    assert problems == [results.Problem(str(missing), "no such file or folder"),
                        results.Problem(pattern, "no file matches this pattern")]


def test_latest_keeps_the_newest_run_per_tf_version_and_machine(store):
    runs, _ = results.scan([store])
    newest = results.latest(runs)
    assert [(r.tf_version, r.machine_key, r.datetime[:13]) for r in newest] == [
        ("2.20.0", "gpu-b-x1", "2026-11-23T11"), ("2.21.0", "cpu-a-2c", "2026-11-23T12")]
    assert [r.datetime[:13] for r in results.latest(reversed(runs), by=())] == ["2026-11-23T12"]
    assert len(results.latest(runs, by=("machine_key",))) == 2
    with pytest.raises(results.ResultsError, match="'cpu'"):
        results.latest(runs, by=("cpu",))
