"""``kbench memory`` (kbench/cli/memory.py), with the fresh processes faked."""

from __future__ import annotations

import json

import pytest

from kbench import fingerprint, memcheck
from test_cli import assert_bad_input, invoke
from test_memcheck import MACHINE, WHEN, memory_run, process


@pytest.fixture
def fake_checks(monkeypatch):
    """check_workflows answers with the peaks (MB) and slopes set in ``state``."""
    state = {"peak": 900, "slope_mb": 1.0, "alive": 0, "calls": []}

    def check(names, settings, *, on_process=None, **_):
        state["calls"].append((list(names), settings))
        checked = []
        for name in names:
            procs = (process(state["peak"], slope_mb=state["slope_mb"], alive=state["alive"]),
                     process(state["peak"], clear_session=True))
            for p in procs:
                on_process(name, p)
            checked.append(memcheck.WorkflowMemory(name, procs))
        return tuple(checked)

    monkeypatch.setattr(memcheck, "check_workflows", check)
    monkeypatch.setattr(fingerprint, "fingerprint", lambda: MACHINE)
    return state


def test_memory_checks_the_default_workflows_stores_the_run_and_passes(fake_checks, tmp_path):
    result = invoke("memory", "--out", tmp_path, "--examples", "320")
    assert result.exit_code == 0, result.output
    names, settings = fake_checks["calls"][0]
    assert names == list(memcheck.DEFAULT_WORKFLOWS) and settings.examples == 320
    (stored,) = tmp_path.rglob("*.json")
    run = memcheck.read_run(stored)
    assert [w.workflow for w in run.workflows] == names
    assert f"stored: {stored}" in " ".join(result.stdout.split())
    assert "mlp-sequential-fit-function-fp32 (without clear_session): peak 900.0 MB, slope " \
           "+1.0 MB/call, 0 alive" in result.stdout
    assert result.stdout.rstrip().endswith("PASS")


def test_memory_writes_peaks_and_slopes_for_github_action_benchmark(fake_checks, tmp_path):
    out = tmp_path / "memory.json"
    name = "mlp-sequential-fit-function-fp32"
    result = invoke("memory", "-w", name, "--out", tmp_path, "--github-json", out)
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(out.read_text())}
    assert entries[f"{name} peak RSS"]["value"] == 900.0
    assert entries[f"{name} training's peak"]["value"] == 400.0
    assert entries[f"{name} RSS per call without clear_session"]["value"] == 1.0
    assert {e["unit"] for e in entries.values()} == {"MB"}
    assert f"{name} GPU peak" not in entries  # a CPU run


def test_memory_writes_tensorboard_scalars_of_the_run(fake_checks, tmp_path):
    from test_report import read_trial

    name = "mlp-sequential-fit-function-fp32"
    result = invoke("memory", "-w", name, "--out", tmp_path / "runs",
                    "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "tb").iterdir()
    assert f"tensorboard: {run_dir}" in " ".join(result.stdout.split())
    hparams, scalars = read_trial(run_dir / name)
    assert hparams["workflow"] == name
    assert scalars["memory/peak_RSS_mb"] == [900.0]
    assert scalars["memory/RSS_per_call_without_clear_session_mb"] == [1.0]
    assert scalars["memory/alive/without_clear_session"] == [0.0]
    rss = scalars["memory/rss_mb/without_clear_session"]  # one point per call
    assert len(rss) == len(process(900).leak.rss) and rss == sorted(rss)


def test_memory_fails_a_leak_naming_the_workflow(fake_checks, tmp_path):
    fake_checks["alive"] = 2
    result = invoke("memory", "-w", "mlp-sequential-fit-function-fp32", "--out", tmp_path)
    assert result.exit_code == 1, result.output
    assert ("mlp-sequential-fit-function-fp32 leaks: 2 of the 6 models its calls built are "
            "still alive") in result.stderr


def test_memory_gates_the_peak_against_a_baseline_run(fake_checks, tmp_path):
    name = "mlp-sequential-fit-function-fp32"
    baseline = memcheck.write_run(memory_run({name: 800}), tmp_path / "base")
    fake_checks["peak"] = 900  # +12.5%
    result = invoke("memory", "-w", name, "--out", tmp_path / "new", "--baseline", baseline)
    assert result.exit_code == 1, result.output
    assert "its peak RSS grew +12.5%, from 800 MB to 900 MB (the limit is +10%" in result.stderr
    passed = invoke("memory", "-w", name, "--out", tmp_path / "new2", "--baseline", baseline,
                    "--max-growth", "15%")
    assert passed.exit_code == 0, passed.output
    assert "+12.5%" in passed.stdout and f"PASS against {baseline}" in passed.stdout


def test_memory_gates_a_stored_candidate_without_measuring(fake_checks, tmp_path):
    """Two stored runs (e.g. of two TensorFlow versions) gated against each other."""
    name = "mlp-sequential-fit-function-fp32"
    baseline = memcheck.write_run(memory_run({name: 800}), tmp_path / "base")
    candidate = memcheck.write_run(memory_run({name: 900}), tmp_path / "cand")
    result = invoke("memory", "--baseline", baseline, "--candidate", candidate,
                    "--github-json", tmp_path / "m.json", "--out", tmp_path / "unused")
    assert result.exit_code == 1, result.output
    assert "its peak RSS grew +12.5%, from 800 MB to 900 MB" in result.stderr
    assert f"memory run {candidate}: TensorFlow 2.21.0" in " ".join(result.stdout.split())
    assert fake_checks["calls"] == [] and not (tmp_path / "unused").exists()
    assert json.loads((tmp_path / "m.json").read_text())[0]["value"] == 900.0
    alone = invoke("memory", "--candidate", candidate)  # shown, and its leaks checked
    assert alone.exit_code == 0 and alone.stdout.rstrip().endswith("PASS"), alone.output


def test_memory_reports_a_baseline_and_several_stored_candidates(fake_checks, tmp_path):
    name = "mlp-sequential-fit-function-fp32"
    runs = [memcheck.write_run(memory_run({name: mb}), tmp_path / str(mb)) for mb in (800, 820, 900)]
    result = invoke("memory", "--baseline", runs[0], "--candidate", runs[1], "--candidate",
                    runs[2], "--report", tmp_path / "rep", "--report-name", "versions")
    assert result.exit_code == 1, result.output  # the third grew 12.5%
    assert "grew +12.5%" in result.stderr and "grew +2.5%" not in result.stderr
    assert result.stdout.count("memory run ") == 2 and fake_checks["calls"] == []
    markdown = (tmp_path / "rep" / "versions.md").read_text()
    assert (tmp_path / "rep" / "versions-memory.png").stat().st_size > 0
    assert f"| {name} | 800.0 MB, training 300.0 MB | 820.0 MB (+2.5%), training 320.0 MB | " \
           f"**900.0 MB (+12.5%), training 400.0 MB** |" in markdown
    assert_bad_input(invoke("memory", "--candidate", runs[1], "--candidate", runs[2],
                            "--github-json", tmp_path / "g.json"),
                     "--github-json writes one run, got 2 --candidate runs")


@pytest.mark.parametrize("args, fragments", [
    (["--candidate", "/no/such/memory.json"], ["/no/such/memory.json", "cannot read it"]),
    (["--candidate", "/no/such/memory.json", "-w", "mlp-sequential-fit-function-fp32"],
     ["-w/--workflow picks workflows to measure", "got both"]),
    (["-w", "no-such-workflow"], ["no-such-workflow"]),
    (["--calls", "3", "--warmup-calls", "2"], ["at least 3 calls past the warm-up, got calls=3"]),
    (["--max-growth", "lots"], ["--max-growth", "lots"]),
    (["--baseline", "/no/such/memory.json"], ["/no/such/memory.json", "cannot read it"]),
])
def test_memory_refuses_bad_input_naming_it(fake_checks, tmp_path, args, fragments):
    assert_bad_input(invoke("memory", "--out", tmp_path, *args), *fragments)
    assert fake_checks["calls"] == []  # refused before any process started


def test_memory_refuses_an_out_that_is_a_file(fake_checks, tmp_path):
    file = tmp_path / "f"
    file.write_text("")
    assert_bad_input(invoke("memory", "--out", file), "--out must be a folder", str(file))
    assert_bad_input(invoke("memory", "--out", tmp_path, "--tensorboard", file),
                     "--tensorboard must be a folder", str(file))
    assert fake_checks["calls"] == []


def test_a_stored_run_of_another_time_is_kept(fake_checks, tmp_path):
    kept = memcheck.write_run(memory_run({"w": 900}), tmp_path)
    assert invoke("memory", "-w", "mlp-sequential-fit-function-fp32", "--out",
                  tmp_path).exit_code == 0
    assert kept.exists() and len(list(tmp_path.rglob("*.json"))) == 2
    assert memcheck.read_run(kept).datetime == WHEN.isoformat()
