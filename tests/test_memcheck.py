"""Tests for kbench.memcheck: memory checks in fresh processes, their stored runs, the gate."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import pytest

from kbench import memcheck, testing
from kbench.memcheck import MemoryCheckError, Settings
from kbench.memory import LEAK_MAX_BYTES_PER_CALL, LeakResult, PeakMemory

REPO = Path(__file__).resolve().parents[1]

MB = 1_000_000
WHEN = dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.timezone.utc)
MACHINE = testing.fake_fingerprint()


def process(peak_mb: float, *, clear_session=False, slope_mb: float = 1.0, alive=0):
    rss = tuple(int((600 + i * slope_mb) * MB) for i in range(6))
    return memcheck.ProcessResult(
        clear_session, PeakMemory(int(500 * MB), int(peak_mb * MB)),
        LeakResult(rss, alive, 2, slope_mb * MB, clear_session, float(LEAK_MAX_BYTES_PER_CALL)))


def memory_run(peaks: dict[str, float], **process_options):
    workflows = tuple(memcheck.WorkflowMemory(name, (process(mb, **process_options),
                                                     process(mb * 0.99, clear_session=True)))
                      for name, mb in peaks.items())
    return memcheck.new_run(workflows, Settings(), MACHINE, now=WHEN)


def test_a_run_round_trips_through_its_stored_file(tmp_path):
    run = memory_run({"w1": 900, "w2": 1200})
    path = memcheck.write_run(run, tmp_path)
    assert path == tmp_path / "2.21.0" / run.fingerprint["machine_key"] / "20261203T150000.000000Z.json"
    assert memcheck.read_run(path) == run
    assert json.loads(path.read_text())["kbench_memory_schema"] == memcheck.MEMORY_SCHEMA_VERSION


@pytest.mark.parametrize("path", sorted(REPO.glob("reports/examples/**/memory/**/*.json")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_committed_memory_run_reads_and_rewrites_to_the_same_run(path):
    run = memcheck.read_run(path)
    assert run.workflows and run.tf_version in str(path)
    assert memcheck.MemoryRun.from_json(json.loads(json.dumps(run.to_json()))) == run


def test_the_gated_peak_is_the_larger_of_the_two_processes():
    (workflow,) = memory_run({"w": 1000}).workflows
    assert workflow.peak.peak_bytes == 1000 * MB
    assert workflow.peak.run_bytes == 500 * MB
    assert workflow.peak_spread == pytest.approx(1 / 0.99 - 1)


@pytest.mark.parametrize("edit, quoted", [
    (lambda d: d.pop("kbench_memory_schema"), "not a kbench memory run"),
    (lambda d: d.update(kbench_memory_schema=7), "kbench_memory_schema"),
    (lambda d: d.pop("settings"), "missing field(s) ['settings']"),
    (lambda d: d["settings"].update(examples=0), "examples must be a positive int, got 0"),
    (lambda d: d.update(workflows={"w": 1}), "workflows must be a list"),
    (lambda d: d["workflows"][0]["processes"][0]["peak"].update(peak_bytes=-1),
     "peak_bytes must be"),
    (lambda d: d["workflows"][0]["processes"][0]["leak"].update(rss=[]),
     "rss must be a non-empty list"),
    (lambda d: d["workflows"][0]["processes"][0].pop("leak"),
     "a process must be an object with clear_session, peak and leak"),
])
def test_a_malformed_stored_run_is_refused_naming_the_file_and_field(tmp_path, edit, quoted):
    path = memcheck.write_run(memory_run({"w": 900}), tmp_path)
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(MemoryCheckError) as info:
        memcheck.read_run(path)
    assert quoted in str(info.value) and str(path) in str(info.value)


def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{nope")
    with pytest.raises(MemoryCheckError, match="x.json: not JSON"):
        memcheck.read_run(path)
    with pytest.raises(MemoryCheckError, match="cannot read it"):
        memcheck.read_run(tmp_path / "missing.json")


@pytest.mark.parametrize("kwargs, quoted", [
    (dict(examples=0), "examples must be a positive int, got 0"),
    (dict(calls=4, warmup_calls=2), "at least 3 calls past the warm-up, got calls=4"),
    (dict(warmup_calls=-1), "warmup_calls must be a non-negative int, got -1"),
    (dict(dataset=""), "dataset"),
])
def test_bad_settings_are_refused_quoting_them(kwargs, quoted):
    with pytest.raises(MemoryCheckError) as info:
        Settings(**kwargs)
    assert quoted in str(info.value)


def test_the_gate_fails_a_peak_grown_beyond_the_limit_and_passes_one_within():
    baseline = memory_run({"grew": 1000, "within": 1000, "new": 1000})
    candidate = memory_run({"grew": 1150, "within": 1050, "only-now": 800})
    verdicts = {v.workflow: v for v in memcheck.gate(memory_run({"grew": 1000, "within": 1000}),
                                                     candidate, max_growth=0.10)}
    assert verdicts["grew"].growth == pytest.approx(0.15)
    assert verdicts["grew"].failures == (
        "grew: its peak RSS grew +15.0%, from 1000 MB to 1150 MB (the limit is +10%, "
        "MAX_PEAK_GROWTH)",)
    assert verdicts["within"].failures == () and verdicts["within"].growth == pytest.approx(0.05)
    assert verdicts["only-now"].baseline is None and verdicts["only-now"].failures == ()
    assert "new" not in verdicts
    assert all(not v.failures for v in memcheck.gate(baseline, baseline))


def test_the_gate_fails_any_leak_whatever_the_peak():
    baseline = memory_run({"w": 1000})
    leaking = memory_run({"w": 1000}, alive=3)
    (verdict,) = memcheck.gate(baseline, leaking)
    assert verdict.failures == ("w leaks: 3 of the 6 models its calls built are still alive "
                                "after the last call (without clear_session); something holds "
                                "them",)
    (verdict,) = memcheck.gate(baseline, memory_run({"w": 1000}, slope_mb=40))
    assert "w leaks 40.00 MB per call" in verdict.failures[0]
    with pytest.raises(MemoryCheckError, match="max_growth must be a finite number >= 0, got -1"):
        memcheck.gate(baseline, baseline, max_growth=-1)


def test_check_workflows_runs_two_processes_a_workflow_without_then_with_clear_session():
    commands = []

    def fake_run(command):
        commands.append(command)
        return process(900, clear_session="--clear-session" in command)

    seen = []
    checked = memcheck.check_workflows(["a", "b"], Settings(examples=64), python="py",
                                       run=fake_run, on_process=lambda w, p: seen.append(w))
    assert [w.workflow for w in checked] == ["a", "b"] and seen == ["a", "a", "b", "b"]
    assert [c[:5] for c in commands] == [["py", "-m", "kbench.memcheck", "--workflow", w]
                                         for w in ("a", "a", "b", "b")]
    assert ["--clear-session" in c for c in commands] == [False, True, False, True]
    assert commands[0][commands[0].index("--examples") + 1] == "64"


def _script(tmp_path, body: str) -> list[str]:
    """A child command that runs ``body`` as its Python program (run_child's stand-in)."""
    path = tmp_path / "child.py"
    path.write_text(body)
    return [sys.executable, str(path), "--workflow", "w"]


def test_run_child_reads_the_result_line_after_other_output(tmp_path):
    line = json.dumps(process(900).to_dict())
    result = memcheck.run_child(_script(tmp_path, f"print('noise')\nprint({line!r})\n"))
    assert result == process(900)


@pytest.mark.parametrize("body, quoted", [
    ("import sys\nsys.stderr.write('boom: no kbench here\\n')\nsys.exit(3)\n",
     "memory check (w, without clear_session) failed, exit 3"),
    ("print('no result')\n", "printed no result; its stdout ended 'no result\\n'"),
])
def test_a_failing_child_is_reported_with_its_stderr(tmp_path, body, quoted):
    with pytest.raises(MemoryCheckError) as info:
        memcheck.run_child(_script(tmp_path, body))
    assert quoted in str(info.value)
    if "exit 3" in quoted:
        assert "boom: no kbench here" in str(info.value)


def test_a_child_over_its_time_is_killed_with_its_process_group(tmp_path):
    marker = tmp_path / "grandchild.pid"
    body = ("import subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(marker)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(60)\n")
    start = time.monotonic()
    with pytest.raises(MemoryCheckError, match=r"took over 2 s; killed"):
        memcheck.run_child(_script(tmp_path, body), timeout_s=2)
    assert time.monotonic() - start < 30
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 10
    while testing.process_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not testing.process_alive(grandchild)


def test_an_interpreter_that_does_not_exist_is_named():
    with pytest.raises(MemoryCheckError, match="cannot start '/no/such/python'"):
        memcheck.run_child(["/no/such/python", "-m", "kbench.memcheck"])


def test_a_real_child_measures_a_peak_and_a_flat_leak_check():
    """One real fresh process (TensorFlow imported, a tiny MLP trained 4 times)."""
    settings = Settings(dataset="synthetic", examples=128, calls=3, warmup_calls=0)
    result = memcheck.run_child(memcheck.child_command(
        sys.executable, "mlp-sequential-fit-function-fp32", settings, clear_session=True))
    assert result.clear_session and result.leak.clear_session
    assert result.peak.start_bytes > 100 * MB  # TensorFlow is imported before the reset
    assert result.peak.run_bytes > 0  # the training took memory beyond that
    assert result.peak.device_peak_bytes is None  # on the CPU
    assert result.leak.alive == 0 and len(result.leak.rss) == 3
