"""The kbench command (kbench.cli), through typer's CliRunner.

Stored runs are small pytest-benchmark documents shaped like a real one
(tests/test_ab.py's run_document); the benchmark suite is never really run:
``bench`` and ``ab`` get a FakeSuite as their runner through the context object.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kbench import cli, fingerprint, results, workflows
from test_ab import KEYS, FakeSuite, make_pythons, rounds, run_document

COMMANDS = ("list", "env", "run", "bench", "compare", "check", "gate", "ab", "report",
            "export")
# Rounds per side in the stored runs below: above stats.min_samples_for(0.01) = 5,
# so a 20% slowdown with 2% noise is significant.
N_ROUNDS = 7
BASE = 30000.0


def invoke(*args: str, **extra):
    return CliRunner().invoke(cli.app, list(map(str, args)), prog_name="kbench", **extra)


def assert_bad_input(result, *fragments: str) -> None:
    """Exit 2, one line on stderr naming what was wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def write_run(path: Path, factor: float, *, when: str, seed: int = 0, keys=KEYS,
              tensorflow: str | None = None) -> Path:
    """A run file whose benchmarks run at ``factor`` x the base throughput."""
    samples = {key: rounds(BASE * factor, N_ROUNDS, seed=seed + i) for i, key in enumerate(keys)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run_document(samples, when=when, tensorflow=tensorflow)))
    return path


@pytest.fixture
def two_runs(tmp_path) -> tuple[Path, Path, Path]:
    """A baseline, a candidate at the same speed, and a candidate 20% slower."""
    base = write_run(tmp_path / "base.json", 1.0, when="2026-11-23T12:00:00+00:00", seed=0)
    same = write_run(tmp_path / "same.json", 1.0, when="2026-11-23T12:01:00+00:00", seed=10)
    slow = write_run(tmp_path / "slow.json", 0.8, when="2026-11-23T12:02:00+00:00", seed=20)
    return base, same, slow


# --------------------------------------------------------------------------- help and errors


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    result = invoke(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: kbench{' ' + command if command else ''}" in result.stdout


def test_no_command_shows_the_commands():
    result = invoke()
    assert result.exit_code == 2
    assert all(command in result.output for command in COMMANDS)


@pytest.mark.parametrize("args, fragments", [
    (["frob"], ["No such command 'frob'"]),
    (["list", "--family", "rnn"], ["'--family'", "'rnn'"]),
    (["list", "--precision", "fp8"], ["'--precision'", "'fp8'"]),
    (["run", "mlp-functional-fit"], ["'mlp-functional-fit'"]),
    (["run", "mlp-functional-fit-function-fp64"], ["'fp64'"]),
    (["run", "mlp-functional-fit-function-fp32", "--epochs", "0"], ["'--epochs'", "got '0'"]),
    (["run", "mlp-functional-fit-function-fp32", "--batch-size", "x"], ["'--batch-size'", "'x'"]),
    (["bench", "--timeout", "0.5"], ["'--timeout'", "got '0.5'"]),
    (["run", "mlp-functional-fit-function-fp32", "--dataset", "cifar"], ["'cifar'"]),
    (["gate", "--candidate", "x.json"], ["Missing option '--baseline'"]),
    (["export", "--format", "csv"], ["'--format'", "'csv'"]),
    (["compare", "--alpha", "1.5", "a.json", "b.json"], ["'--alpha'", "got '1.5'"]),
    (["gate", "--baseline", "a", "--candidate", "b", "--alpha", "x"], ["'--alpha'", "got 'x'"]),
    (["bench", "--timeout", "nan"], ["'--timeout'", "got 'nan'"]),
    (["compare", "--min-change", "5", "a.json", "b.json"], ["'--min-change'", "'5'"]),
])
def test_bad_arguments_exit_2_with_a_one_line_reason(args, fragments):
    assert_bad_input(invoke(*args), *fragments)


@pytest.mark.parametrize("value", ["10", "1.5", "100%", "0%", "-5%", "ten", ""])
def test_gate_rejects_a_max_slowdown_that_is_neither_a_percentage_nor_a_fraction(two_runs, value):
    base, same, _ = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", same, "--max-slowdown", value)
    assert_bad_input(result, "'--max-slowdown'", f"got {value!r}")


@pytest.mark.parametrize("text, expected", [("10%", 0.10), ("0.10", 0.10), (" 2.5% ", 0.025),
                                            (".2", 0.2), ("99.5%", 0.995)])
def test_parse_fraction_accepts_percentages_and_fractions(text, expected):
    assert cli.parse_fraction(text, "--x") == pytest.approx(expected)


def test_parse_fraction_allows_zero_only_where_asked():
    assert cli.parse_fraction("0%", "--min-change", allow_zero=True) == 0.0


def test_missing_files_exit_2_naming_them(tmp_path, two_runs):
    base, same, _ = two_runs
    missing = tmp_path / "nope.json"
    assert_bad_input(invoke("gate", "--baseline", missing, "--candidate", same), str(missing))
    assert_bad_input(invoke("compare", base, missing), f"no such file or folder: '{missing}'")
    assert_bad_input(invoke("compare", base, tmp_path / "x*" / "*.json"), "no files match")
    assert_bad_input(invoke("gate", "--baseline", base, "--candidate", same,
                            "--policy", tmp_path / "policy.toml"), "no such policy file")
    assert_bad_input(invoke("compare", "--store", tmp_path / "empty"), "does not exist")


def test_an_unreadable_named_run_file_exits_2_with_the_reason(tmp_path, two_runs):
    base, _, _ = two_runs
    broken = tmp_path / "broken.json"
    broken.write_text(base.read_text()[:200])
    assert_bad_input(invoke("compare", base, broken), str(broken), "truncated JSON")


# --------------------------------------------------------------------------- list


def names(result) -> set[str]:
    assert result.exit_code == 0, result.output
    return set(result.stdout.split())


def test_list_shows_all_108_workflows_in_a_table():
    result = invoke("list")
    assert result.exit_code == 0
    assert "108 workflow(s)" in result.stdout
    assert "cnn-subclassed-custom-xla-bf16" in result.stdout


def test_list_filters_by_every_name_field():
    found = names(invoke("list", "--names", "--family", "cnn", "--loop", "custom",
                         "--precision", "bf16", "--execution", "xla", "--execution", "eager"))
    assert found == {f"cnn-{style}-custom-{execution}-bf16"
                     for style in ("sequential", "functional", "subclassed")
                     for execution in ("xla", "eager")}
    assert names(invoke("list", "--names", "--style", "subclassed", "--precision", "float32",
                        "--family", "mlp", "--loop", "fit")) == {
        "mlp-subclassed-fit-eager-fp32", "mlp-subclassed-fit-function-fp32",
        "mlp-subclassed-fit-xla-fp32"}


def test_list_reference_shows_only_the_reference_workflows():
    assert names(invoke("list", "--names", "--reference")) == set(workflows.REFERENCE_WORKFLOWS)
    table = invoke("list", "--reference", "--family", "cnn").stdout
    assert "cnn-functional-fit-function-fp32" in table and "mlp-" not in table


# --------------------------------------------------------------------------- env, run


def test_env_json_is_a_valid_fingerprint():
    result = invoke("env", "--json")
    assert result.exit_code == 0, result.output
    fp = json.loads(result.stdout)
    fingerprint.validate(fp)
    assert fp["machine_key"] == fingerprint.machine_key(fp)


def test_env_describes_the_machine():
    result = invoke("env")
    assert result.exit_code == 0
    assert result.stdout.startswith("Machine: ")
    assert "TensorFlow " in result.stdout


def test_run_trains_one_epoch_and_prints_metrics_and_tensorboard_logs(tmp_path):
    logs = tmp_path / "tb"
    result = invoke("run", "mlp-functional-custom-function-fp32", "--dataset", "synthetic",
                    "--epochs", "1", "--batch-size", "128", "--tensorboard", logs)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "on synthetic: 1 epoch(s), batch size 128" in out
    assert "epoch 1: accuracy" in out
    metrics = dict(line.split(" ", 1) for line in out.splitlines()
                   if line.startswith(("test_accuracy ", "epochs_run ", "steps ")))
    assert 0.0 <= float(metrics["test_accuracy"]) <= 1.0
    assert metrics["epochs_run"] == "1"
    assert metrics["steps"] == str(-(-4000 // 128))  # synthetic has 4,000 training examples
    assert list(logs.rglob("events.out.tfevents.*"))


# --------------------------------------------------------------------------- compare


def test_compare_shows_medians_ratios_verdicts_and_geomean(two_runs):
    base, same, slow = two_runs
    result = invoke("compare", base, same, slow)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"#0 baseline: tf2.21.0 cpu-amd-epyc-2c 2026-11-23T12:00:00  {base}" in out
    for key in KEYS:
        row = next(line for line in out.splitlines() if key in line)
        same, slower = re.findall(r"(\d\.\d\d)x \[[\d.]+, [\d.]+\] (same|slower|faster)", row)
        assert same[1] == "same" and float(same[0]) == pytest.approx(1.0, abs=0.05)
        assert slower[1] == "slower" and float(slower[0]) == pytest.approx(0.8, abs=0.05)
    assert "geometric mean of ratios" in out
    assert "#1 vs #0: same machine and software fingerprint" in out


def test_compare_takes_another_baseline_and_min_change(two_runs):
    base, same, slow = two_runs
    result = invoke("compare", base, slow, "--baseline", "1", "--min-change", "30%")
    assert result.exit_code == 0, result.output
    assert "#1 (baseline)" in result.stdout
    rows = [line for line in result.stdout.splitlines() if KEYS[0] in line]
    assert "1.25x" in rows[0] and "same" in rows[0]  # 25% faster is below a 30% minimum
    assert_bad_input(invoke("compare", base, slow, "--baseline", "2"), "'--baseline'", "got 2")


def test_compare_latest_keeps_the_newest_run_per_tf_version(tmp_path):
    store = tmp_path / "store"
    old = write_run(store / "a" / "old.json", 1.0, when="2026-11-20T09:00:00+00:00")
    new = write_run(store / "a" / "new.json", 1.0, when="2026-11-21T09:00:00+00:00", seed=5)
    other = write_run(store / "b" / "tf220.json", 1.0, when="2026-11-19T09:00:00+00:00",
                      tensorflow="2.20.0")
    result = invoke("compare", "--latest", "--store", store)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert str(new) in out and str(other) in out and str(old) not in out
    assert "software.tensorflow: '2.20.0' -> '2.21.0'" in out


def test_compare_skips_unreadable_files_found_in_a_folder_and_says_why(tmp_path, two_runs):
    base, same, _ = two_runs
    folder = tmp_path / "runs"
    folder.mkdir()
    for run in (base, same):
        (folder / run.name).write_text(run.read_text())
    (folder / "broken.json").write_text("{")
    result = invoke("compare", folder)
    assert result.exit_code == 0, result.output
    assert f"skipped {folder / 'broken.json'}: truncated JSON" in result.stderr
    assert KEYS[0] in result.stdout


def test_compare_needs_two_runs(two_runs):
    base, _, _ = two_runs
    assert_bad_input(invoke("compare", base), "need at least 2 run(s), found 1")


def test_compare_refuses_runs_with_different_benchmarks_naming_them(tmp_path, two_runs):
    base, _, _ = two_runs
    fewer = write_run(tmp_path / "fewer.json", 1.0, when="2026-11-23T13:00:00+00:00",
                      keys=KEYS[:1])
    assert_bad_input(invoke("compare", base, fewer), KEYS[1])


# --------------------------------------------------------------------------- gate


def test_gate_passes_when_the_candidate_is_as_fast(two_runs):
    base, same, _ = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", same, "--max-slowdown", "10%")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout


def test_gate_fails_listing_the_benchmarks_slower_than_allowed(two_runs):
    base, _, slow = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", slow, "--max-slowdown", "0.10")
    assert result.exit_code == 1, result.output
    assert "FAIL: 2 benchmark(s)" in result.stdout
    failures = [line for line in result.stdout.splitlines() if line.startswith("  test_")]
    assert sorted(line.split(":")[0].strip() for line in failures) == sorted(KEYS)
    assert all("allowed slowdown 10%" in line for line in failures)


def test_gate_of_single_runs_warns_that_it_cannot_see_session_drift(two_runs):
    base, same, _ = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", same)
    assert "one run a side" in result.stderr and "kbench ab" in result.stderr


def test_gate_pools_repeated_runs_one_median_per_session(tmp_path):
    """Sessions drifting +-20% with tight rounds: round-level A/A 'fails', session-level passes."""
    drift = {"base": [1.0, 0.8, 1.2, 0.9, 1.1], "cand": [0.85, 1.15, 0.95, 1.05, 0.82]}
    files = {side: [write_run(tmp_path / f"{side}{i}.json", f, seed=10 * i + len(side),
                              when=f"2026-11-23T12:{i:02d}:{len(side):02d}+00:00")
                    for i, f in enumerate(factors)] for side, factors in drift.items()}
    single = invoke("gate", "--baseline", files["base"][0], "--candidate", files["cand"][0])
    assert single.exit_code == 1, single.output  # 0.85x of one session is "significant"
    args = [a for side in ("base", "cand") for path in files[side]
            for a in (f"--{'baseline' if side == 'base' else 'candidate'}", path)]
    pooled = invoke("gate", *args)
    assert pooled.exit_code == 0, pooled.output
    assert "baseline: medians of 5 run(s)" in pooled.stdout
    assert "one run a side" not in pooled.stderr


def test_gate_allows_more_slowdown_than_the_regression(two_runs):
    base, _, slow = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", slow, "--max-slowdown", "25%")
    assert result.exit_code == 0, result.output


def test_gate_policy_overrides_the_default_per_benchmark(tmp_path, two_runs):
    base, _, slow = two_runs
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[benchmarks."{KEYS[0]}"]\nmax_slowdown = 0.30\n')
    result = invoke("gate", "--baseline", base, "--candidate", slow, "--policy", policy)
    assert result.exit_code == 1, result.output
    failures = [line for line in result.stdout.splitlines() if line.startswith("  test_")]
    assert [line.split(":")[0].strip() for line in failures] == [KEYS[1]]


def test_gate_bad_policy_or_mismatched_runs_exit_2(tmp_path, two_runs):
    base, _, slow = two_runs
    policy = tmp_path / "policy.toml"
    policy.write_text('[benchmarks."test_nothing[*]"]\nmax_slowdown = 0.30\n')
    assert_bad_input(invoke("gate", "--baseline", base, "--candidate", slow, "--policy", policy),
                     str(policy), "test_nothing[*]")
    fewer = write_run(tmp_path / "fewer.json", 1.0, when="2026-11-23T13:00:00+00:00",
                      keys=KEYS[:1])
    assert_bad_input(invoke("gate", "--baseline", base, "--candidate", fewer), KEYS[1])


# --------------------------------------------------------------------------- bench, ab


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "benchmarks").mkdir()
    return tmp_path


def test_bench_runs_the_suite_with_this_python_and_reports_where_it_stored(project):
    store = project / "store"
    suite = FakeSuite({sys.executable: 1.0})
    result = invoke("bench", "--profile", "smoke", "--store", store, "-k", "loop",
                    "--root", project, obj={"runner": suite})
    assert result.exit_code == 0, result.output
    [call] = suite.calls
    assert call["command"][:5] == [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only"]
    assert call["command"][-4:] == ["--kbench-store", str(store), "-k", "loop"]
    [stored] = list(store.rglob("*.json"))
    assert f"Stored run: {stored}" in result.stdout
    assert "2 benchmark(s), TensorFlow 2.21.0, machine cpu-amd-epyc-2c" in result.stdout


def test_bench_exits_1_when_the_suite_fails(project):
    suite = FakeSuite({sys.executable: 1.0}, exit_codes={1: 1})
    result = invoke("bench", "--profile", "smoke", "--store", project / "s", "--root", project,
                    obj={"runner": suite})
    assert result.exit_code == 1
    assert "failed with exit code 1" in result.stderr


def test_bench_refuses_an_unknown_profile_or_a_folder_without_benchmarks(tmp_path):
    assert_bad_input(invoke("bench", "--profile", "huge"), "'--profile'", "'huge'")
    assert_bad_input(invoke("bench", "--profile", "smoke", "--root", tmp_path),
                     "no benchmarks/ folder")


def test_ab_interleaves_pools_and_gates_the_candidate(project):
    a, b = make_pythons(project)
    suite = FakeSuite({a: 1.0, b: 0.8})
    result = invoke("ab", "--baseline-python", a, "--candidate-python", b, "--pairs", "5",
                    "--store", project / "store", "--root", project, obj={"runner": suite})
    assert result.exit_code == 1, result.output
    assert suite.pythons() == [a, b] * 5
    assert sum(line.startswith("side A: ") for line in result.stdout.splitlines()) == 5
    assert "FAIL: 2 benchmark(s)" in result.stdout
    assert "A: medians of 5 run(s) of" in result.stdout


def test_ab_passes_when_both_sides_are_as_fast(project):
    a, b = make_pythons(project)
    result = invoke("ab", "--baseline-python", a, "--candidate-python", b, "--pairs", "2",
                    "--store", project / "store", "--root", project,
                    obj={"runner": FakeSuite({a: 1.0, b: 1.0})})
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout


def test_ab_reports_a_failed_invocation_with_its_side_and_exit_code(project):
    a, b = make_pythons(project)
    suite = FakeSuite({a: 1.0, b: 1.0}, exit_codes={2: 4})
    result = invoke("ab", "--baseline-python", a, "--candidate-python", b, "--root", project,
                    "--store", project / "store", obj={"runner": suite})
    assert result.exit_code == 1
    assert "side B" in result.stderr and "run 1 of 5 failed with exit code 4" in result.stderr
    assert "AssertionError: loss rose" in result.stderr


def test_ab_bad_arguments_exit_2(project):
    a, _ = make_pythons(project)
    missing = project / "nowhere" / "python"
    assert_bad_input(invoke("ab", "--baseline-python", a, "--candidate-python", missing,
                            "--root", project), "side B", str(missing))
    assert_bad_input(invoke("ab", "--baseline-python", a, "--candidate-python", a,
                            "--pairs", "0"), "'--pairs'", "got '0'")
    assert_bad_input(invoke("ab", "--baseline-python", a, "--candidate-python", a,
                            "--max-slowdown", "2"), "'--max-slowdown'", "got '2'")


# --------------------------------------------------------------------------- report, export


def test_report_writes_markdown_and_html(tmp_path, two_runs):
    base, _, slow = two_runs
    out = tmp_path / "out"
    result = invoke("report", base, slow, "--out", out, "--name", "tf")
    assert result.exit_code == 0, result.output
    assert f"markdown: {out / 'tf.md'}" in result.stdout
    assert f"html: {out / 'tf.html'}" in result.stdout
    assert KEYS[0] in (out / "tf.md").read_text()
    assert (out / "tf.html").read_text().lstrip().lower().startswith("<!doctype html")


def test_export_github_writes_one_entry_per_benchmark(tmp_path, two_runs):
    base, _, _ = two_runs
    result = invoke("export", "--format", "github", base)
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [e["name"] for e in entries] == list(KEYS)
    medians = {k: r.samples_per_s for k, r in results.read_run(base).results.items()}
    assert entries[0]["value"] == pytest.approx(sorted(medians[KEYS[0]])[N_ROUNDS // 2])
    target = tmp_path / "bench.json"
    assert invoke("export", "--format", "github", base, "-o", target).exit_code == 0
    assert json.loads(target.read_text()) == entries


def test_export_github_needs_exactly_one_run(two_runs):
    base, same, _ = two_runs
    assert_bad_input(invoke("export", "--format", "github", base, same),
                     "exports one run, got 2")


def test_export_tensorboard_writes_a_log_dir_per_run(tmp_path, two_runs):
    base, same, _ = two_runs
    logs = tmp_path / "tb"
    result = invoke("export", "--format", "tensorboard", base, same, "-o", logs)
    assert result.exit_code == 0, result.output
    written = [Path(line.split(": ", 1)[1]) for line in result.stdout.splitlines()
               if line.startswith("tensorboard: ")]
    assert len(written) == 2
    assert all(list(d.rglob("events.out.tfevents.*")) for d in written)


# --------------------------------------------------------------------------- check


def test_check_passes_on_the_stored_run_and_says_what_does_not_apply():
    result = invoke("check", results_data())
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"function-vs-eager-mlp: test_execution_throughput\[cpu-b64-mlp-fit-function\]"
                     r" / test_execution_throughput\[cpu-b64-mlp-fit-eager\] = [\d.]+x .*: passed",
                     out), out
    assert "function-vs-eager-cnn: not applicable" in out


def test_check_fails_when_function_is_barely_faster_than_eager(tmp_path):
    document = json.loads(results_data().read_text())
    eager = next(b for b in document["benchmarks"] if b["name"].endswith("mlp-fit-eager]"))
    function = next(b for b in document["benchmarks"] if b["name"].endswith("mlp-fit-function]"))
    function["extra_info"]["samples_per_s"] = [
        2 * v for v in eager["extra_info"]["samples_per_s"]]
    path = tmp_path / "slow-function.json"
    path.write_text(json.dumps(document))
    result = invoke("check", path)
    assert result.exit_code == 1, result.output
    assert "function-vs-eager-mlp" in result.stdout and ": failed" in result.stdout
    assert "1 ratio check(s) failed" in result.stderr


def results_data() -> Path:
    return Path(__file__).parent / "data" / "results" / "v1-smoke-run.json"
