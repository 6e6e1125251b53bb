"""Tests for kbench.report's documents and exports: Markdown, HTML, plots,
github-action-benchmark JSON and TensorBoard events of comparison matrices built in memory."""

import base64
import copy
import dataclasses
import html
import json
import os
import re
import struct

import numpy as np
import pytest

from kbench import compare, report, results, stats, testing
from kbench import fingerprint as kfingerprint
from kbench.counters import Counters
from kbench.record import Latencies, Pooling, StartupSplit
from kbench.report import tables

# >= stats.min_samples_for(DEFAULT_ALPHA) == 5 rounds, so that two separated
# samples can be significant; 7 like the default profile.
ROUNDS = 7
LATENCY_MS = (2.0, 2.5, 4.0)  # p50, p90, p99 written into every result that has latencies
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The smallest figure (one benchmark row) is several hundred pixels each way at
# report.plots.DPI; a blank or collapsed figure would be far smaller.
MIN_PLOT_PX = 200
BASE_TF, CANDIDATE_TF = "2.21.0", "2.20.0"
# Keys as pytest names them; the last one carries Markdown and HTML metacharacters.
KEY_A, KEY_B, KEY_C = "test_a[cpu-b64]", "test_b[cpu-b64]", "test_c[cpu|b<64>]"
BASE_MEDIANS = {KEY_A: 10_000, KEY_B: 5_000, KEY_C: 2_000}
# a: 0.80x (significantly slower), b: unchanged, c: 1.30x (significantly faster)
CANDIDATE_MEDIANS = {KEY_A: 8_000, KEY_B: 5_000, KEY_C: 2_600}


def rounds(median, spread=0.01):
    """ROUNDS per-round throughputs spread evenly around ``median`` (which is their median)."""
    return list(median * (1 + spread * np.linspace(-1, 1, ROUNDS)))


def make_run(fp, medians, *, tf_version=BASE_TF, when="2026-01-01T00:00:00+00:00",
             latency=True, **extra):
    """A Run built in memory: one result per key, on ``fp`` with TensorFlow ``tf_version``."""
    fp = copy.deepcopy(fp)
    fp["software"]["tensorflow"] = tf_version
    latencies = Latencies(*(ms / 1e3 for ms in LATENCY_MS)) if latency else None
    # Each sample one session's median, as kbench ab --sessions pools them: the design
    # whose changes a report may call significant (one session a side is untested).
    extra.setdefault("pooling", Pooling(sources=tuple(f"s{i}" for i in range(ROUNDS)),
                                        unit="session"))
    return testing.fake_run({key: rounds(median) for key, median in medians.items()},
                            fingerprint=fp, datetime=when, group="g", startup_s=0.5,
                            step_latency_s=latencies, **extra)


@pytest.fixture(scope="module")
def fp():
    return kfingerprint.fingerprint()


@pytest.fixture(scope="module")
def runs(fp):
    return (make_run(fp, BASE_MEDIANS),
            make_run(fp, CANDIDATE_MEDIANS, tf_version=CANDIDATE_TF,
                     when="2026-01-02T00:00:00+00:00"))


@pytest.fixture(scope="module")
def matrix(runs):
    return compare.compare_runs(runs, 0, alpha=stats.DEFAULT_ALPHA,
                                min_factor=stats.DEFAULT_MIN_FACTOR)


@pytest.fixture(scope="module")
def plots(matrix):
    return report.make_plots(matrix)


def assert_png(data: bytes) -> None:
    """A PNG that matplotlib drew something into: signature and a non-trivial IHDR size."""
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    assert width >= MIN_PLOT_PX and height >= MIN_PLOT_PX, (width, height)


def table_row(markdown: str, first_cell: str, containing: str) -> str:
    """The Markdown table row that starts with ``first_cell`` and contains ``containing``."""
    rows = [line for line in markdown.splitlines()
            if line.startswith(f"| {first_cell} |") and containing in line]
    assert len(rows) == 1, (first_cell, containing, rows)
    return rows[0]


def md_key(key: str) -> str:
    return key.replace("|", "\\|")


def test_one_session_a_side_is_never_bold_and_the_report_says_why(fp):
    single = [make_run(fp, BASE_MEDIANS, pooling=None),
              make_run(fp, CANDIDATE_MEDIANS, tf_version=CANDIDATE_TF, pooling=None,
                       when="2026-01-02T00:00:00+00:00")]
    md = report.render_markdown(compare.compare_runs(single), title="single sessions")
    row = table_row(md, KEY_A, "x [")
    assert "0.80x [" in row and "untested" in row and "**" not in row
    assert "One session a side is untested" in md
    assert "compare one session a side" in md and "kbench ab" in md  # the warning


def test_markdown_has_a_row_per_benchmark_with_ratios_and_verdicts(matrix):
    md = report.render_markdown(matrix, title="TF 2.20 vs 2.21")
    assert md.splitlines()[0] == "# TF 2.20 vs 2.21"
    slower = table_row(md, KEY_A, "x [")
    assert "**0.80x [" in slower and "slower" in slower
    same = table_row(md, KEY_B, "x [")
    assert "1.00x [" in same and "same" in same and "**" not in same
    faster = table_row(md, md_key(KEY_C), "x [")
    assert "**1.30x [" in faster and "faster" in faster
    assert table_row(md, "geometric mean", "x") == f"| geometric mean | {matrix.geomean[1]:.3f}x |"
    assert "| 10,000 [" in table_row(md, KEY_A, "cv") and "| 8,000 [" in table_row(md, KEY_A, "cv")
    latency = " / ".join(f"{ms:.2f}" for ms in LATENCY_MS)
    assert table_row(md, KEY_B, latency).count(latency) == 2
    assert f"p < {stats.DEFAULT_ALPHA:g}" in md and "0 (baseline)" in md


def test_markdown_links_the_plots_it_is_given(matrix):
    md = report.render_markdown(matrix, plots={"ratios": "r.png", "latency": "sub/l.png"})
    assert "![ratios](r.png)" in md and "![latency](sub/l.png)" in md
    assert "![throughput]" not in md
    with pytest.raises(report.ReportError, match="'heatmap'"):
        report.render_markdown(matrix, plots={"heatmap": "h.png"})


def test_fingerprints_are_side_by_side_with_differences_highlighted(matrix):
    md = report.render_markdown(matrix)
    software = table_row(md, "Software", "TensorFlow")
    _, base, candidate = software[2:-2].split(" | ")
    assert f"TensorFlow {BASE_TF}" in base and not base.startswith("**")
    assert candidate.startswith("**") and f"TensorFlow {CANDIDATE_TF}" in candidate
    machine = table_row(md, "Machine", "")
    assert "**" not in machine and machine.count(matrix.runs[0].machine_key) == 2
    assert f"software.tensorflow: '{BASE_TF}' -> '{CANDIDATE_TF}'" in md


def test_html_is_self_contained_with_embedded_pngs(matrix, plots):
    page = report.render_html(matrix, title="tf <upgrade>", plots=plots)
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(plots) == 3
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "://" not in page and "<link" not in page and "<script" not in page
    assert_png(base64.b64decode(sources[0].split(",", 1)[1]))
    assert "<title>tf &lt;upgrade&gt;</title>" in page
    assert "test_c[cpu|b&lt;64&gt;]" in page and "<64>" not in page
    for mark in ("slower", "faster", "differs"):
        assert f'<td class="{mark}">' in page


def test_render_html_makes_its_own_plots(matrix):
    page = report.render_html(matrix)
    assert page.count('src="data:image/png;base64,') == 3


def test_make_plots_draws_throughput_ratios_and_latency(plots):
    assert set(plots) == {"throughput", "ratios", "latency"}
    for png in plots.values():
        assert_png(png)


def test_plots_and_sections_need_their_data(fp):
    single = compare.compare_runs([make_run(fp, {KEY_A: 1_000}, latency=False)])
    assert set(report.make_plots(single)) == {"throughput"}
    md = report.render_markdown(single)
    assert "No comparisons" in md
    assert "## Ratio to" not in md and "## Step latency" not in md and "## Throughput" in md


def test_the_counters_section_bolds_counters_that_differ_from_the_baseline(fp):
    more = dataclasses.replace(COUNTED, traces={"multi_step_on_iterator": 1,
                                                "one_step_on_data": 3})
    base = make_run(fp, {KEY_A: 1_000, "plain": 900}, per_key={KEY_A: {"counters": COUNTED}})
    cand = make_run(fp, {KEY_A: 1_000, "plain": 900}, tf_version=CANDIDATE_TF,
                    when="2026-01-02T00:00:00+00:00", per_key={KEY_A: {"counters": more}})
    md = report.render_markdown(compare.compare_runs([base, cand]))
    assert "## Exact counters" in md
    [row] = [line for line in md.splitlines() if line.startswith(f"| {KEY_A} |")
             and "traces" in line]
    assert row == f"| {KEY_A} | 3 traces, 1072 nodes, 2 XLA | **4 traces, 1072 nodes, 3 XLA** |"
    assert "| plain |" not in md.split("## Exact counters")[1].split("##")[0]
    assert_png(report.make_plots(compare.compare_runs([base, cand]))["counters"])
    single = report.render_markdown(compare.compare_runs([make_run(fp, {KEY_A: 1_000})]))
    assert "## Exact counters" not in single  # no run has counters
    assert "counters" not in report.make_plots(compare.compare_runs([make_run(fp, {KEY_A: 1_000})]))


def test_the_startup_section_and_plot_show_each_runs_parts_bold_beyond_the_gate(fp):
    traced = StartupSplit(0.1, 0.35, 0.05, tracing_s=0.2)  # 0.1 + 0.2 + 0.1 -> 0.45 s
    base = make_run(fp, {KEY_A: 1_000, "old": 900},
                    per_key={KEY_A: {"startup_split": traced},
                             "old": {"startup_split": StartupSplit(0.1, 0.35, 0.05)}})
    slow = base.results[KEY_A].replace(
        startup_s=0.5 * compare.DEFAULT_MAX_STARTUP_FACTOR + 0.01,
        startup_split=StartupSplit(0.1, 1.5, 0.05, tracing_s=1.2))
    cand = make_run(fp, {KEY_A: 1_000, "old": 900}, tf_version=CANDIDATE_TF,
                    when="2026-01-02T00:00:00+00:00",
                    per_key={KEY_A: {}, "old": {"startup_split": StartupSplit(0.1, 0.35, 0.05)}})
    cand = dataclasses.replace(cand, results={**cand.results, KEY_A: slow})
    matrix = compare.compare_runs([base, cand])
    md = report.render_markdown(matrix)
    section = md.split("## Startup")[1].split("\n## ")[0]
    assert f"| {KEY_A} | 0.10 + 0.20 + 0.10 -> 500 ms | **0.10 + 1.20 + 0.25 -> 1.51 s** |" \
        in section
    # A split without TensorFlow's tracing clock (schema 4) keeps tracing and compilation together.
    assert "| old | 0.10 + 0.30 -> 500 ms | 0.10 + 0.30 -> 500 ms |" in section
    assert_png(report.make_plots(matrix)["startup"])
    assert traced.parts() == pytest.approx(
        {"setup": 0.1, "tracing": 0.2, "compile": 0.1})
    without = compare.compare_runs([make_run(fp, {KEY_A: 1_000})])
    assert "## Startup" not in report.render_markdown(without)
    assert "startup" not in report.make_plots(without)


def test_ratio_grid_holds_ratios_and_significance(matrix):
    ratios, significant = tables.ratio_grid(matrix)
    assert ratios[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert ratios[:, 1] == pytest.approx([0.8, 1.0, 1.3])
    assert significant.tolist() == [[False, True], [False, False], [False, True]]


def test_empty_matrix_is_refused(runs):
    empty = compare.Matrix(runs=runs[:1], baseline=0, keys=(), cells={}, geomean=(None,),
                           fingerprint_diffs=({},), warnings=())
    for render in (report.render_markdown, report.render_html, report.make_plots):
        with pytest.raises(report.ReportError, match=r"keys=\(\)"):
            render(empty)
        with pytest.raises(report.ReportError, match=r"must be a kbench.compare.Matrix .*got list"):
            render(list(runs))


def test_write_report_writes_markdown_html_and_pngs(tmp_path, matrix):
    out = tmp_path / "new" / "reports"
    for _ in range(2):  # the second time replaces the first
        paths = report.write_report(matrix, out, name="tf-upgrade")
    names = {"markdown": "tf-upgrade.md", "html": "tf-upgrade.html",
             **{p: f"tf-upgrade-{p}.png" for p in ("throughput", "ratios", "latency")}}
    assert {kind: path.name for kind, path in paths.items()} == names
    assert sorted(os.listdir(out)) == sorted(names.values())  # no temporary files left
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "![ratios](tf-upgrade-ratios.png)" in md and "**0.80x [" in md
    assert_png(paths["latency"].read_bytes())
    assert paths["html"].read_text(encoding="utf-8").count("data:image/png;base64,") == 3


def test_write_report_refuses_a_file_as_out_dir(tmp_path, matrix):
    a_file = tmp_path / "reports"
    a_file.write_text("not a folder")
    with pytest.raises(report.ReportError, match=re.escape(repr(str(a_file)))):
        report.write_report(matrix, a_file)


@pytest.mark.parametrize("name", ["", "../report", "a/b", ".hidden", 3])
def test_write_report_refuses_names_that_are_not_plain_file_names(tmp_path, matrix, name):
    with pytest.raises(report.ReportError, match=re.escape(repr(name))):
        report.write_report(matrix, tmp_path, name=name)
    assert os.listdir(tmp_path) == []


def test_github_benchmark_json_is_custom_bigger_is_better(runs):
    run = runs[1]
    entries = report.github_benchmark_json(run)
    assert [e["name"] for e in entries] == list(CANDIDATE_MEDIANS)
    for entry in entries:
        assert set(entry) == {"name", "unit", "value", "range", "extra"}
        assert entry["unit"] == "samples/s" and isinstance(entry["extra"], str)
        summary = stats.summarize(run.results[entry["name"]].samples_per_s)
        assert entry["value"] == pytest.approx(CANDIDATE_MEDIANS[entry["name"]])
        half_width = float(re.fullmatch(r"± (\d+\.\d+)", entry["range"]).group(1))
        assert half_width == pytest.approx((summary.ci_high - summary.ci_low) / 2, abs=0.005)
        assert half_width > 0
        assert f"TensorFlow {CANDIDATE_TF}" in entry["extra"]
        assert "mlp-functional-fit-function-fp32" in entry["extra"]
    assert json.loads(json.dumps(entries)) == entries


COUNTED = Counters(traces={"multi_step_on_iterator": 1, "one_step_on_data": 2},
                   retraces={"multi_step_on_iterator": 0, "one_step_on_data": 0},
                   graph_nodes={"multi_step_on_iterator": 324, "one_step_on_data": 748},
                   xla_functions=("one_step_on_data",))


def test_github_smaller_json_holds_startups_and_exact_counters(fp):
    run = make_run(fp, {"counted": 1000.0, "plain": 900.0}, per_key={
        "counted": {"counters": COUNTED, "startup_split": StartupSplit(0.1, 0.35, 0.05)}})
    entries = {e["name"]: e for e in report.github_smaller_json(run)}
    assert set(entries) == {"counted startup", "plain startup", "counted traces",
                            "counted graph nodes", "counted XLA compilations",
                            "counted trace+compile"}
    assert entries["counted trace+compile"]["value"] == pytest.approx(0.30)
    assert (entries["counted startup"]["value"], entries["counted startup"]["unit"]) == (0.5, "s")
    assert entries["counted traces"]["value"] == 3
    assert entries["counted graph nodes"]["value"] == 324 + 748
    assert entries["counted XLA compilations"]["value"] == 2
    assert json.loads(json.dumps(list(entries.values()))) == list(entries.values())
    traced = make_run(fp, {"counted": 1000.0}, per_key={
        "counted": {"startup_split": StartupSplit(0.1, 0.35, 0.05, tracing_s=0.2)}})
    entries = {e["name"]: e["value"] for e in report.github_smaller_json(traced)}
    assert entries["counted tracing"] == 0.2
    assert entries["counted compile"] == pytest.approx(0.1)


def test_exact_counters_become_tensorboard_scalars(tmp_path, fp):
    run = make_run(fp, {"counted": 1000.0}, per_key={
        "counted": {"counters": COUNTED, "startup_split": StartupSplit(0.1, 0.35, 0.05)}})
    (run_dir,) = report.write_tensorboard([run], tmp_path)
    [(_, scalars)] = [read_trial(d) for d in run_dir.iterdir()]
    assert scalars["startup/trace_compile_s"] == pytest.approx([0.30])
    assert scalars["startup/setup_s"] == pytest.approx([0.1])
    assert scalars["counters/traces/one_step_on_data"] == [2.0]
    assert scalars["counters/graph_nodes/multi_step_on_iterator"] == [324.0]
    assert scalars["counters/xla_compilations"] == [2.0]
    assert "startup/tracing_s" not in scalars  # a split without TensorFlow's tracing clock
    traced = run.results["counted"].replace(startup_split=StartupSplit(0.1, 0.35, 0.05, 0.2))
    assert report.counter_scalars(traced)["startup/compile_s"] == pytest.approx(0.1)
    assert report.counter_scalars(run.results["counted"].replace(counters=None,
                                                                   startup_split=None)) == {}


def test_a_memory_report_refuses_what_is_not_a_memory_run(tmp_path, runs):
    with pytest.raises(report.ReportError, match=r"at least one run, got \[\]"):
        report.write_memory_report([], tmp_path)
    with pytest.raises(report.ReportError, match=r"runs\[0\] must be a kbench.memcheck.MemoryRun"):
        report.memory_sections([runs[0]])


def test_a_memory_report_bolds_a_leak_and_shows_what_one_run_lacks():
    from test_memcheck import memory_run

    base = memory_run({"w1": 800, "w2": 700})
    leaky = memory_run({"w1": 810}, alive=3)
    _, peaks, leaks = report.memory_sections([base, leaky])
    rows = {row[0].text: row for row in leaks.rows}
    assert rows["w1"][2].mark == "differs" and rows["w1"][2].text.endswith("3 alive")
    assert rows["w1"][1].mark == "" and rows["w2"][2].text == "n/a"
    assert {row[0].text: row for row in peaks.rows}["w1"][2].text.startswith("810.0 MB (+1.2%)")


def test_memory_tensorboard_refuses_what_is_not_a_memory_run(tmp_path, runs):
    with pytest.raises(report.ReportError, match=r"at least one run, got \[\]"):
        report.write_memory_tensorboard([], tmp_path)
    with pytest.raises(report.ReportError, match=r"runs\[0\] must be a kbench.memcheck.MemoryRun"
                                                 r" with workflows, got Run"):
        report.write_memory_tensorboard([runs[0]], tmp_path)
    assert not any(tmp_path.iterdir())


def test_github_benchmark_json_refuses_what_is_not_a_run_with_results(fp):
    empty = results.Run(datetime="2026-01-01T00:00:00", fingerprint=fp, results={})
    with pytest.raises(report.ReportError, match=re.escape(repr(empty.label))):
        report.github_benchmark_json(empty)
    with pytest.raises(report.ReportError, match="got dict"):
        report.github_benchmark_json({"benchmarks": []})


def read_trial(trial_dir):
    """(hparams, {scalar tag: [values by step]}) read back from one TensorBoard trial folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(trial_dir))
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    start = metadata.parse_session_start_info_plugin_data(content)
    hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    scalars = {tag: [float(tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]
               for tag in events.Tags()["tensors"] if tag != metadata.SESSION_START_INFO_TAG}
    return hparams, scalars


def test_tensorboard_events_round_trip(tmp_path, runs):
    run_dirs = report.write_tensorboard(runs, tmp_path / "tb")
    assert len(set(run_dirs)) == 2 and all(d.parent == tmp_path / "tb" for d in run_dirs)
    for run, run_dir in zip(runs, run_dirs):
        trials = [read_trial(d) for d in sorted(run_dir.iterdir())]
        assert sorted(h["benchmark"] for h, _ in trials) == sorted(run.results)
        for hparams, scalars in trials:
            result = run.results[hparams["benchmark"]]
            assert hparams["tf_version"] == run.tf_version
            assert hparams["machine"] == run.machine_key
            assert hparams["workflow"] == result.workflow and hparams["batch_size"] == 64
            assert scalars["samples_per_s"] == pytest.approx(result.samples_per_s, rel=1e-6)
            assert scalars["median_samples_per_s"] == pytest.approx(
                [np.median(result.samples_per_s)], rel=1e-6)
            assert scalars["step_latency_s/p99"] == pytest.approx([LATENCY_MS[2] / 1e3])
            assert scalars["startup_s"] == pytest.approx([0.5])


def test_tensorboard_refuses_to_mix_into_existing_run_folders(tmp_path, runs):
    (run_dir,) = report.write_tensorboard(runs[:1], tmp_path)
    with pytest.raises(report.ReportError, match=re.escape(str(run_dir))):
        report.write_tensorboard(runs[:1], tmp_path)
    with pytest.raises(report.ReportError, match=re.escape("got []")):
        report.write_tensorboard([], tmp_path)


def test_matrix_warnings_are_listed(fp, runs):
    smoke = make_run(fp, BASE_MEDIANS, profile="smoke")
    warned = compare.compare_runs([runs[0], smoke])
    assert warned.warnings
    md, page = report.render_markdown(warned), report.render_html(warned, plots={})
    for warning in warned.warnings:
        assert f"- warning: {warning}" in md
        assert f"<li>warning: {html.escape(warning)}</li>" in page
