"""``kbench compare``, ``check``, ``gate``, ``report`` and ``export`` (kbench/cli/runs.py)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from kbench import results, testing
from test_ab import KEYS
from test_cli import N_ROUNDS, assert_bad_input, invoke, two_runs, write_run  # noqa: F401

# A real smoke-profile run kept as a test input (tests/data/results/README.md).
STORED_RUN = Path(__file__).parent / "data" / "results" / "v1-smoke-run.json"


def failure_keys(result) -> list[str]:
    """The benchmarks a FAIL verdict lists, in its order."""
    return [line.split(":")[0].strip() for line in result.stdout.splitlines()
            if line.startswith("  test_")]


# --------------------------------------------------------------------------- compare


def test_compare_shows_medians_ratios_verdicts_and_geomean(two_runs):
    base, same, slow = two_runs
    result = invoke("compare", base, same, slow)
    assert result.exit_code == 0, result.output
    out = result.stdout
    label = results.read_run(base).label
    assert f"#0 baseline: {label}  {base}" in out
    for key in KEYS:
        row = next(line for line in out.splitlines() if key in line)
        same, slower = re.findall(r"(\d\.\d\d)x \[[\d.]+, [\d.]+\] (\w+)", row)
        # One session a side: the ratios, and no verdict the rounds cannot carry.
        assert same[1] == "untested" and float(same[0]) == pytest.approx(1.0, abs=0.05)
        assert slower[1] == "untested" and float(slower[0]) == pytest.approx(0.8, abs=0.05)
    assert "compare one session a side" in result.stderr
    geomean = next(line for line in out.splitlines() if "geometric mean of ratios" in line)
    assert [float(g) for g in re.findall(r"(\d\.\d\d)x", geomean)] == [
        pytest.approx(1.0, abs=0.05), pytest.approx(0.8, abs=0.05)]
    assert "#1 vs #0: same machine and software fingerprint" in out


def test_compare_takes_another_baseline_and_min_change(tmp_path):
    base = write_run(tmp_path / "base.json", 1.0, when="2026-11-23T12:00:00+00:00",
                     sessions=True)
    slow = write_run(tmp_path / "slow.json", 0.8, when="2026-11-23T12:02:00+00:00", seed=20,
                     sessions=True)
    result = invoke("compare", base, slow, "--baseline", "1", "--min-change", "30%")
    assert result.exit_code == 0, result.output
    assert "#1 (baseline)" in result.stdout
    rows = [line for line in result.stdout.splitlines() if KEYS[0] in line]
    assert "1.25x" in rows[0] and "same" in rows[0]  # 25% faster is below a 30% minimum
    assert_bad_input(invoke("compare", base, slow, "--baseline", "2"),
                     "'--baseline'", "from 0 to 1, got 2")


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


@pytest.mark.parametrize("candidate, max_slowdown", [(1, "10%"), (2, "25%")])
def test_gate_passes_a_candidate_within_the_allowed_slowdown(two_runs, candidate, max_slowdown):
    """As fast, or 20% slower with 25% allowed."""
    result = invoke("gate", "--baseline", two_runs[0], "--candidate", two_runs[candidate],
                    "--max-slowdown", max_slowdown)
    assert result.exit_code == 0, result.output
    assert f"PASS: no benchmark slower than allowed ({max_slowdown}; " in result.stdout


def test_gate_fails_listing_the_benchmarks_slower_than_allowed(two_runs):
    base, _, slow = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", slow, "--max-slowdown", "0.10")
    assert result.exit_code == 1, result.output
    assert "FAIL: 2 benchmark(s)" in result.stdout
    assert sorted(failure_keys(result)) == sorted(KEYS)
    failures = [line for line in result.stdout.splitlines() if line.startswith("  test_")]
    assert all("allowed slowdown 10%" in line for line in failures)


def test_gate_fails_a_startup_grown_beyond_the_allowed_factor(tmp_path, two_runs):
    def with_startup(source, seconds, name):
        run = results.read_run(source)
        run = dataclasses.replace(run, results={k: r.replace(startup_s=seconds)
                                                for k, r in run.results.items()})
        return testing.write_run(tmp_path / name, run)

    base, same, _ = two_runs
    quick, slow = with_startup(base, 0.5, "quick.json"), with_startup(same, 2.0, "slow.json")
    result = invoke("gate", "--baseline", quick, "--candidate", slow)
    assert result.exit_code == 1, result.output
    assert "whose startup grew beyond the allowed factor" in result.stdout
    assert "startup 2.00 s against 500 ms, 4.00x (allowed 3x: --max-startup-factor)" \
        in result.stdout
    assert "startups grown beyond 3x of #0's" in result.stdout
    lenient = invoke("gate", "--baseline", quick, "--candidate", slow,
                     "--max-startup-factor", "5")
    assert lenient.exit_code == 0, lenient.output
    # Its startup list follows the gate's factor, not the default's.
    assert "startups grown beyond" not in lenient.stdout
    assert "startups: within 5x of #0's in every run" in " ".join(lenient.stdout.split())


def test_gate_of_single_runs_warns_that_it_cannot_see_session_drift(two_runs):
    base, same, _ = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", same)
    assert "compare one session a side" in result.stderr and "kbench ab" in result.stderr
    assert "9 of 20 single-session A/As" in result.stderr


def test_gate_pools_repeated_runs_one_median_per_session(tmp_path):
    """Sessions drifting +-20% with tight rounds: round-level A/A 'fails', session-level passes."""
    drift = {"base": [1.0, 0.8, 1.2, 0.9, 1.1], "cand": [0.85, 1.15, 0.95, 1.05, 0.82]}
    files = {side: [write_run(tmp_path / f"{side}{i}.json", f, seed=10 * i + len(side),
                              when=f"2026-11-23T12:{i:02d}:{len(side):02d}+00:00")
                    for i, f in enumerate(factors)] for side, factors in drift.items()}
    single = invoke("gate", "--baseline", files["base"][0], "--candidate", files["cand"][0])
    assert single.exit_code == 1, single.output  # 0.85x of one session: the ratio alone
    assert "untested" in single.stdout
    args = [a for side in ("base", "cand") for path in files[side]
            for a in (f"--{'baseline' if side == 'base' else 'candidate'}", path)]
    pooled = invoke("gate", *args)
    assert pooled.exit_code == 0, pooled.output
    assert "baseline: medians of 5 run(s)" in pooled.stdout
    assert "one session a side" not in pooled.stderr


def test_gate_pools_both_sides_when_only_one_has_several_runs(tmp_path, two_runs):
    base, same, _ = two_runs
    again = write_run(tmp_path / "again.json", 1.0, when="2026-11-23T12:05:00+00:00", seed=30)
    result = invoke("gate", "--baseline", base, "--candidate", same, "--candidate", again)
    assert "baseline: medians of 1 run(s)" in result.stdout, result.output
    assert "candidate: medians of 2 run(s)" in result.stdout


def test_gate_policy_overrides_the_default_per_benchmark(tmp_path, two_runs):
    base, _, slow = two_runs
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[benchmarks."{KEYS[0]}"]\nmax_slowdown = 0.30\n')
    result = invoke("gate", "--baseline", base, "--candidate", slow, "--policy", policy)
    assert result.exit_code == 1, result.output
    assert failure_keys(result) == [KEYS[1]]


def test_gate_bad_policy_or_mismatched_runs_exit_2(tmp_path, two_runs):
    base, _, slow = two_runs
    policy = tmp_path / "policy.toml"
    policy.write_text('[benchmarks."test_nothing[*]"]\nmax_slowdown = 0.30\n')
    assert_bad_input(invoke("gate", "--baseline", base, "--candidate", slow, "--policy", policy),
                     str(policy), "test_nothing[*]")
    fewer = write_run(tmp_path / "fewer.json", 1.0, when="2026-11-23T13:00:00+00:00",
                      keys=KEYS[:1])
    assert_bad_input(invoke("gate", "--baseline", base, "--candidate", fewer), KEYS[1])


# --------------------------------------------------------------------------- check


def test_check_passes_on_the_stored_run_and_says_what_does_not_apply():
    result = invoke("check", STORED_RUN)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"function-vs-eager-mlp: test_execution_throughput\[cpu-b64-mlp-fit-function\]"
                     r" / test_execution_throughput\[cpu-b64-mlp-fit-eager\] = [\d.]+x .*: passed",
                     out), out
    assert "function-vs-eager-cnn: not applicable" in out


def test_check_fails_when_function_is_barely_faster_than_eager(tmp_path):
    document = json.loads(STORED_RUN.read_text())
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


def test_export_github_smaller_writes_the_smaller_is_better_entries(two_runs):
    base, _, _ = two_runs
    result = invoke("export", "--format", "github-smaller", base)
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    from kbench import report  # imports matplotlib

    assert entries == json.loads(json.dumps(report.github_smaller_json(results.read_run(base))))


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


def test_compare_shows_the_exact_counters_that_changed_and_says_when_none_did(tmp_path):
    from test_report import COUNTED

    more = dataclasses.replace(COUNTED, traces={"multi_step_on_iterator": 1,
                                                "one_step_on_data": 3})
    paths = []
    for i, counted in enumerate((COUNTED, more, COUNTED)):
        run = testing.fake_run({"counted": testing.draw_samples(1000, 5, seed=i),
                                "plain": testing.draw_samples(900, 5, seed=i)},
                               datetime=f"2026-01-0{i + 1}T00:00:00+00:00",
                               per_key={"counted": {"counters": counted}})
        paths.append(testing.write_run(tmp_path / f"r{i}.json", run))
    changed = invoke("compare", paths[0], paths[1])
    assert changed.exit_code == 0, changed.output
    assert "exact counters that differ from #0's" in changed.stdout
    counters_table = changed.stdout.split("exact counters that differ")[1]
    [row] = [line for line in counters_table.splitlines() if "│ counted" in line]
    assert "3 traces, 1072 nodes, 2 XLA" in row and "4 traces, 1072 nodes, 3 XLA" in row
    assert "plain" not in counters_table
    same = invoke("compare", paths[0], paths[2])
    assert ("exact counters (traces, graph nodes, XLA compilations): the same in every run, "
            "1 benchmark(s)") in " ".join(same.stdout.split())


def test_compare_shows_the_startups_grown_beyond_the_gates_factor_with_their_parts(tmp_path):
    from kbench.record import StartupSplit

    paths = []
    for i, (startup, split) in enumerate(((0.5, StartupSplit(0.1, 0.35, 0.05, 0.2)),
                                          (2.0, StartupSplit(0.1, 1.85, 0.05, 1.5)),
                                          (0.6, None))):
        run = testing.fake_run({"k": testing.draw_samples(1000, 5, seed=i)}, startup_s=startup,
                               datetime=f"2026-01-0{i + 1}T00:00:00+00:00",
                               per_key={"k": {"startup_split": split}})
        paths.append(testing.write_run(tmp_path / f"r{i}.json", run))
    grown = invoke("compare", paths[0], paths[1])
    assert grown.exit_code == 0, grown.output
    table = grown.stdout.split("startups grown beyond 3x of #0's")[1]
    [row] = [line for line in table.splitlines() if "│ k " in line]
    assert "0.10 + 0.20 + 0.10 -> 500 ms" in row and "0.10 + 1.50 + 0.30 -> 2.00 s" in row
    assert "4.00x" in row
    within = invoke("compare", paths[0], paths[2])
    assert ("startups: within 3x of #0's in every run, 1 benchmark(s) (the largest, k in #1: "
            "1.20x)") in " ".join(within.stdout.split())
