"""Plain-words summaries and reports of benchmark results. Reports never measure.

Two audiences:

- the end of a benchmark session: :func:`summary_lines` reads benchmark
  records (the ``extra_info`` dicts written by
  :func:`kbench.measure.benchmark_training`, or read back from pytest-benchmark
  JSON); each has ``samples_per_s`` (one value per measured round) and labels:
  ``comparison`` (the group compared within one run), ``variant``, ``baseline``;
- ``kbench report``: a comparison matrix of stored runs
  (:class:`kbench.compare.Matrix`) becomes Markdown and a self-contained HTML
  page with plots (:func:`write_report`; the plots live in ``kbench._plots``),
  and runs are exported for github-action-benchmark
  (:func:`github_benchmark_json`) and TensorBoard (:func:`write_tensorboard`).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from kbench import _files, _plots, compare, results, stats
from kbench import fingerprint as kfingerprint

# kbench's timed fit rounds may cost at most this much throughput against a
# bare, hand-timed model.fit over the same steps (issue #4's quality bar).
HARNESS_OVERHEAD_TARGET = 0.03
# Median coefficient of variation of per-round throughput we aim for in the
# default profile on an idle machine (issue #4's quality bar); above it, the
# summary says the ratios are less certain.
CV_TARGET = 0.03


@dataclasses.dataclass(frozen=True)
class Row:
    """One benchmark's result, ready to compare with its group's baseline."""

    record: Mapping
    summary: stats.Summary
    ratio: tuple[float, float, float] | None  # (point, low, high) vs baseline; None for it

    @property
    def variant(self) -> str:
        return str(self.record.get("variant", self.record.get("workflow", "?")))


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """A known cause, said in one line when ``applies(row, fingerprint)``."""

    applies: Callable[[Row, Mapping], bool]
    message: Callable[[Row, Mapping], str]


def _is_slower(row: Row) -> bool:
    return row.ratio is not None and row.ratio[2] < 1.0


def _native(fp: Mapping, kind: str) -> bool:
    return bool(fp.get("cpu", {}).get("native_low_precision", {}).get(kind))


def _on_cpu(row: Row) -> bool:
    return "CPU" in str(row.record.get("device", "")).upper()


_PRECISION_KIND = {"mixed_float16": "fp16", "mixed_bfloat16": "bf16"}

DIAGNOSTICS: tuple[Diagnostic, ...] = (
    Diagnostic(
        applies=lambda row, fp: (row.variant in _PRECISION_KIND and _is_slower(row) and _on_cpu(row)
                                 and not _native(fp, _PRECISION_KIND[row.variant])),
        message=lambda row, fp: (
            f"{row.variant} is slower than float32 here: this CPU has no native "
            f"{_PRECISION_KIND[row.variant]} arithmetic, so TF emulates it with casts; mixed "
            "precision pays off on GPUs with tensor cores or CPUs with AMX / AVX512-BF16/FP16."),
    ),
    Diagnostic(
        applies=lambda row, fp: row.variant == "xla" and _is_slower(row),
        message=lambda row, fp: (
            "XLA is slower than tf.function here: on a model this small there is little to "
            "fuse, and XLA's CPU backend does not use oneDNN's tuned matmul/conv kernels."),
    ),
    Diagnostic(
        applies=lambda row, fp: row.variant == "eager" and _is_slower(row),
        message=lambda row, fp: (
            "eager runs each op from Python with no graph: the per-op overhead dominates a "
            "small model's step; use tf.function (or fit's default) outside debugging."),
    ),
    Diagnostic(
        applies=lambda row, fp: row.summary.cv > CV_TARGET,
        message=lambda row, fp: (
            f"{row.variant}: spread across rounds is {row.summary.cv:.1%} (target "
            f"{CV_TARGET:.0%}): the machine was busy or throttled; treat its ratios with care."),
    ),
)


def _groups(records: Iterable[Mapping]) -> dict[str, list[Mapping]]:
    groups: dict[str, list[Mapping]] = {}
    for record in records:
        if "comparison" in record and record.get("samples_per_s"):
            groups.setdefault(record["comparison"], []).append(record)
    return groups


def compare_group(records: Sequence[Mapping]) -> list[Row]:
    """Rows of one comparison group, each with its ratio to the group's baseline."""
    base = next((r for r in records if r.get("variant") == r.get("baseline")), None)
    rows = []
    for record in records:
        ratio = None
        if base is not None and record is not base:
            ratio = stats.ratio_ci(record["samples_per_s"], base["samples_per_s"])
        rows.append(Row(record, stats.summarize(record["samples_per_s"]), ratio))
    return rows


def _row_line(row: Row) -> str:
    s = row.summary
    head = f"  {row.variant:<26} {s.median:>10,.0f} samples/s [{s.ci_low:,.0f}, {s.ci_high:,.0f}]"
    tail = f"cv {s.cv:.1%}"
    if row.ratio is None:
        return f"{head}  {tail}  (baseline)"
    label = f"{row.variant}/{row.record.get('baseline')}"
    return f"{head}  {tail}  {label} {stats.format_ratio(*row.ratio)}"


def _harness_line(row: Row) -> str:
    bare = row.record["bare_fit_samples_per_s"]
    ratio = row.summary.median / bare
    if abs(ratio - 1) <= HARNESS_OVERHEAD_TARGET:
        verdict = f"within the {HARNESS_OVERHEAD_TARGET:.0%} target"
    elif ratio < 1:
        verdict = f"OUTSIDE the {HARNESS_OVERHEAD_TARGET:.0%} target: kbench's rounds cost throughput"
    else:
        # kbench cannot be faster than the same fit without it: the reference was disturbed.
        verdict = (f"OUTSIDE the {HARNESS_OVERHEAD_TARGET:.0%} target: the bare reference ran "
                   "slower, so the machine was busy; rerun")
    return (f"  harness overhead: kbench {row.summary.median:,.0f} vs bare model.fit "
            f"{bare:,.0f} samples/s = {ratio:.3f}x ({verdict})")


def _overlap_lines(rows: Sequence[Row], input_only: Mapping | None) -> list[str]:
    """How much of the possible input/compute overlap each prefetch setting achieved."""
    compute = next((r for r in rows if r.variant == "compute-only"), None)
    if compute is None or input_only is None:
        return []
    per_k = 1000.0  # seconds per 1,000 samples reads well at any batch size
    t_in = per_k / stats.summarize(input_only["samples_per_s"]).median
    t_c = per_k / compute.summary.median
    serial, ideal = t_in + t_c, max(t_in, t_c)
    lines = [f"  bounds per 1k samples: input {t_in:.3f} s, compute {t_c:.3f} s, "
             f"serial {serial:.3f} s, ideal overlap {ideal:.3f} s"]
    if t_in > t_c:
        lines.append("  ! input-bound: the pipeline alone is slower than training; prefetch "
                     "cannot beat the input time; parallel map or cheaper preprocessing can.")
    for row in rows:
        if row.variant == "compute-only":
            continue
        t = per_k / row.summary.median
        gain = (serial - t) / (serial - ideal) if serial > ideal else float("nan")
        lines.append(f"  {row.variant:<26} {t:.3f} s per 1k samples: {gain:.0%} of the possible "
                     "overlap gain")
    return lines


def _input_only_for(records: Sequence[Mapping], batch_size) -> Mapping | None:
    return next((r for r in records if r.get("variant") == "input-only"
                 and r.get("batch_size") == batch_size), None)


def summary_lines(records: Sequence[Mapping], fingerprint: Mapping | None = None) -> list[str]:
    """The end-of-run summary: per comparison group, ratios with CIs and diagnostics."""
    fp = fingerprint or {}
    lines: list[str] = []
    for comparison, group in _groups(records).items():
        rows = compare_group(group)
        lines.append(comparison)
        lines.extend(_row_line(row) for row in rows)
        lines.extend(_harness_line(row) for row in rows if "bare_fit_samples_per_s" in row.record)
        for row in rows:
            lines.extend(f"  ! {d.message(row, fp)}" for d in DIAGNOSTICS if d.applies(row, fp))
        if group[0].get("suite") == "prefetch":
            lines.extend(_overlap_lines(rows, _input_only_for(records, group[0].get("batch_size"))))
    cvs = [stats.summarize(r["samples_per_s"]).cv for r in records if r.get("samples_per_s")]
    if cvs:
        median_cv = float(np.median(cvs))
        lines.append(f"median spread across rounds (cv): {median_cv:.1%} over {len(cvs)} "
                     f"benchmarks (target <= {CV_TARGET:.0%} in the default profile)")
    return lines


# =========================================================================== run reports
#
# A report of a comparison matrix (kbench.compare.Matrix) is a list of sections,
# each a table and maybe a plot. The tables are built once and rendered to
# Markdown or to a self-contained HTML page, so the two never disagree.

DEFAULT_TITLE = "kbench report"
REPORT_DIR = "reports"
THROUGHPUT_UNIT = "samples/s"
# Fingerprint fields shown in the "differences" list of one run, at most; the
# rest are counted. Enough for a TF upgrade (versions, git hash, build, platform).
MAX_DIFFS_SHOWN = 12


# Input a report cannot be made from (a ValueError); the message quotes it. Defined
# with the plots, which raise it too.
ReportError = _plots.ReportError


@dataclasses.dataclass(frozen=True)
class Text:
    """One table cell. ``mark`` says why it stands out: faster, slower, differs, or ""."""

    text: str
    mark: str = ""


@dataclasses.dataclass(frozen=True)
class Section:
    """A heading, paragraphs, bullets, a table and the name of its plot, in that order."""

    heading: str
    header: tuple[str, ...] = ()
    rows: tuple[tuple[Text, ...], ...] = ()
    notes: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()
    plot: str = ""


def _check_matrix(matrix) -> None:
    if not isinstance(matrix, compare.Matrix):
        raise ReportError(f"matrix must be a kbench.compare.Matrix (see compare.compare_runs), "
                          f"got {type(matrix).__name__}: {matrix!r:.80}")
    if not matrix.keys:
        raise ReportError(f"cannot report an empty comparison matrix: keys={matrix.keys!r} "
                          f"in runs {[run.label for run in matrix.runs]}")


def _run_header(matrix, i: int, *, short: bool = False) -> str:
    base = " (baseline)" if i == matrix.baseline else ""
    return f"{i}{base}" if short else f"{i}: {matrix.runs[i].label}{base}"


def _comparison_settings(matrix) -> str:
    if not _plots.has_comparisons(matrix):
        return "No comparisons: a single run."
    return (f"A change is significant when the Mann-Whitney p < {matrix.alpha:g} and the "
            f"ratio of medians is beyond {matrix.min_factor:g}x either way.")


def _runs_section(matrix) -> Section:
    rows = tuple(
        (Text(_run_header(matrix, i)), Text(run.tf_version), Text(run.machine_key),
         Text(run.datetime), Text(run.source or "(in memory)"), Text(str(len(run.results))))
        for i, run in enumerate(matrix.runs))
    note = (f"{len(matrix.runs)} run(s), {len(matrix.keys)} benchmark(s); ratios are to run "
            f"{matrix.baseline}. {_comparison_settings(matrix)}")
    return Section("Runs", ("run", "TensorFlow", "machine", "date", "source", "benchmarks"),
                   rows, (note,), tuple(f"warning: {w}" for w in matrix.warnings))


def _key_rows(matrix, cell_text: Callable, runs: Sequence[int]) -> tuple[tuple[Text, ...], ...]:
    return tuple((Text(key), *(cell_text(matrix.cell(key, i)) for i in runs))
                 for key in matrix.keys)


def _throughput_text(cell) -> Text:
    s = cell.summary
    return Text(f"{s.median:,.0f} [{s.ci_low:,.0f}, {s.ci_high:,.0f}] cv {s.cv:.1%}")


def _ratio_text(cell) -> Text:
    c = cell.comparison
    text = f"{stats.format_ratio(c.ratio, c.ci_low, c.ci_high)} {c.verdict} (p={c.p_value:.2g})"
    return Text(text, c.verdict if c.significant else "")


def _throughput_section(matrix) -> Section:
    runs = range(len(matrix.runs))
    return Section(f"Throughput ({THROUGHPUT_UNIT}: median [95% CI], cv across rounds)",
                   ("benchmark", *(_run_header(matrix, i, short=True) for i in runs)),
                   _key_rows(matrix, _throughput_text, runs), plot="throughput")


def _ratio_section(matrix) -> Section:
    others = [i for i in range(len(matrix.runs)) if i != matrix.baseline]
    rows = _key_rows(matrix, _ratio_text, others)
    geomean = tuple(Text("n/a" if matrix.geomean[i] is None else f"{matrix.geomean[i]:.3f}x")
                    for i in others)
    return Section(f"Ratio to the baseline run {matrix.baseline} (throughput, > 1 is faster)",
                   ("benchmark", *(_run_header(matrix, i, short=True) for i in others)),
                   (*rows, (Text("geometric mean"), *geomean)),
                   ("Bold cells are significant changes.",), plot="ratios")


def _latency_text(matrix, key: str, i: int) -> Text:
    latencies = _plots.step_latencies(matrix.runs[i].results[key])
    if latencies is None:
        return Text("n/a")
    return Text(" / ".join(f"{latencies[q] * 1e3:.2f}" for q in _plots.LATENCY_QUANTILES))


def _latency_section(matrix) -> Section:
    runs = range(len(matrix.runs))
    rows = tuple((Text(key), *(_latency_text(matrix, key, i) for i in runs))
                 for key in matrix.keys)
    return Section("Step latency (ms: p50 / p90 / p99)",
                   ("benchmark", *(_run_header(matrix, i, short=True) for i in runs)),
                   rows, plot="latency")


def _describe_fields(fp: Mapping) -> dict[str, str]:
    """kfingerprint.describe's lines as {label: text} ("Machine: x" -> {"Machine": "x"})."""
    fields = {}
    for line in kfingerprint.describe(fp):
        label, _, text = line.partition(": ")
        fields[label] = text
    return fields


def _format_diff(path: str, values: tuple) -> str:
    before, after = values
    return f"{path}: {before!r} -> {after!r}"


def _diff_bullets(matrix) -> tuple[str, ...]:
    bullets = []
    for i, diffs in enumerate(matrix.fingerprint_diffs):
        if i == matrix.baseline or not diffs:
            continue
        shown = [_format_diff(p, v) for p, v in list(diffs.items())[:MAX_DIFFS_SHOWN]]
        more = len(diffs) - len(shown)
        bullets.append(f"run {i} vs run {matrix.baseline}: " + "; ".join(shown)
                       + (f"; and {more} more" if more > 0 else ""))
    return tuple(bullets) or ("all fingerprints match the baseline run's",)


def _fingerprint_section(matrix) -> Section:
    described = [_describe_fields(run.fingerprint) for run in matrix.runs]
    labels = list(dict.fromkeys(label for fields in described for label in fields))
    base = described[matrix.baseline]
    rows = tuple(
        (Text(label), *(Text(fields.get(label, "n/a"),
                             "differs" if fields.get(label) != base.get(label) else "")
                        for fields in described))
        for label in labels)
    runs = range(len(matrix.runs))
    return Section("Fingerprints", ("", *(_run_header(matrix, i, short=True) for i in runs)),
                   rows, ("Bold cells differ from the baseline run.",), _diff_bullets(matrix))


def report_sections(matrix) -> list[Section]:
    """The report's sections, in order; the ratio section only when there are comparisons."""
    _check_matrix(matrix)
    sections = [_runs_section(matrix), _throughput_section(matrix)]
    if _plots.has_comparisons(matrix):
        sections.append(_ratio_section(matrix))
    if _plots.latency_rows(matrix):
        sections.append(_latency_section(matrix))
    sections.append(_fingerprint_section(matrix))
    return sections


def _check_plot_names(plots: Mapping) -> None:
    unknown = sorted(set(plots) - set(_plots.PLOTS))
    if unknown:
        raise ReportError(f"unknown plot name(s) {unknown}; known: {sorted(_plots.PLOTS)}")


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: Text) -> str:
    body = text.text.replace("|", "\\|").replace("\n", " ")
    return f"**{body}**" if text.mark else body


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Text]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(Text(h)) for h in header) + " |",
             "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
    return lines


def render_markdown(matrix, *, title: str = DEFAULT_TITLE,
                    plots: Mapping[str, str] | None = None) -> str:
    """The report as Markdown; ``plots`` maps plot names to (relative) PNG paths to link."""
    plots = dict(plots or {})
    _check_plot_names(plots)
    lines = [f"# {title}", ""]
    for section in report_sections(matrix):
        lines += [f"## {section.heading}", ""]
        for note in section.notes:
            lines += [note, ""]
        if section.bullets:
            lines += [*(f"- {b}" for b in section.bullets), ""]
        if section.rows:
            lines += [*_md_table(section.header, section.rows), ""]
        if section.plot in plots:
            lines += [f"![{section.plot}]({plots[section.plot]})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.faster { background: #d9f2d9; font-weight: bold; }
td.slower { background: #f8d7d7; font-weight: bold; }
td.differs { background: #fff3c4; font-weight: bold; }
img { max-width: 100%; }
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Text]]) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = "".join((f'<td class="{c.mark}">' if c.mark else "<td>") + html.escape(c.text)
                        + "</td>" for c in row)
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return out


def _html_notes(section: Section) -> list[str]:
    out = [f"<p>{html.escape(n)}</p>" for n in section.notes]
    if section.bullets:
        out += ["<ul>", *(f"<li>{html.escape(b)}</li>" for b in section.bullets), "</ul>"]
    return out


def _html_image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{html.escape(name)} plot" src="data:image/png;base64,{data}"></figure>'


def render_html(matrix, *, title: str = DEFAULT_TITLE,
                plots: Mapping[str, bytes] | None = None) -> str:
    """The report as one self-contained HTML page: CSS inline, plots as base64 data URIs.

    Args:
        plots: PNG bytes by plot name, as :func:`make_plots` returns; made here if None.
    """
    _check_matrix(matrix)
    plots = make_plots(matrix) if plots is None else dict(plots)
    _check_plot_names(plots)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{html.escape(title)}</h1>"]
    for section in report_sections(matrix):
        out += ["<section>", f"<h2>{html.escape(section.heading)}</h2>",
                *_html_notes(section)]
        if section.rows:
            out += _html_table(section.header, section.rows)
        if section.plot in plots:
            out.append(_html_image(section.plot, plots[section.plot]))
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def make_plots(matrix) -> dict[str, bytes]:
    """PNG bytes by plot name (throughput, ratios, latency) for the plots the matrix has data for."""
    _check_matrix(matrix)
    return _plots.make_plots(matrix)


# --------------------------------------------------------------------------- files


def _output_dir(out_dir) -> Path:
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ReportError(f"out_dir must be a directory, got {str(path)!r}, which is a file")
    path.mkdir(parents=True, exist_ok=True)
    return path


# A report's file name stem: no folders, no leading dot (hidden) or dash (option-like).
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_file_name(name) -> None:
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise ReportError(f"name must be a plain file name ({_FILE_NAME.pattern}), got {name!r}")


def write_report(matrix, out_dir=REPORT_DIR, *, name: str = "report",
                 title: str = DEFAULT_TITLE) -> dict[str, Path]:
    """Write ``name.md``, ``name.html`` and ``name-<plot>.png`` into ``out_dir``.

    Returns:
        The written paths by kind: "markdown", "html" and each plot's name.
    """
    _check_file_name(name)
    _check_matrix(matrix)
    out = _output_dir(out_dir)
    pngs = make_plots(matrix)
    paths = {plot: _files.atomic_write_bytes(out / f"{name}-{plot}.png", png)
             for plot, png in pngs.items()}
    markdown = render_markdown(matrix, title=title, plots={p: f.name for p, f in paths.items()})
    paths["markdown"] = _files.atomic_write_bytes(out / f"{name}.md", markdown.encode("utf-8"))
    page = render_html(matrix, title=title, plots=pngs)
    paths["html"] = _files.atomic_write_bytes(out / f"{name}.html", page.encode("utf-8"))
    return paths


# --------------------------------------------------------------------------- exports


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
        summary = stats.summarize(result.samples_per_s)
        entries.append({
            "name": key,
            "unit": THROUGHPUT_UNIT,
            "value": summary.median,
            "range": f"± {(summary.ci_high - summary.ci_low) / 2:.2f}",
            "extra": _tooltip(run, result, summary),
        })
    return entries


# Characters kept in TensorBoard run folder names; anything else becomes "_".
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._=\[\]-]+")
# extra_info fields exported as scalars besides throughput and latency, when numeric.
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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _write_trial(tf, hp, path: Path, run, result) -> None:
    writer = tf.summary.create_file_writer(str(path))
    with writer.as_default():
        hp.hparams(tensorboard_hparams(run, result), trial_id=f"{path.parent.name}/{path.name}")
        for step, value in enumerate(result.samples_per_s):
            tf.summary.scalar("samples_per_s", value, step=step)
        tf.summary.scalar("median_samples_per_s", stats.summarize(result.samples_per_s).median,
                          step=0)
        latencies = _plots.step_latencies(result) or {}
        for q, seconds in latencies.items():
            tf.summary.scalar(f"step_latency_s/{q}", seconds, step=0)
        for field in TENSORBOARD_EXTRA_SCALARS:
            if _is_number(result.extra.get(field)):
                tf.summary.scalar(field, result.extra[field], step=0)
    writer.close()


def write_tensorboard(runs: Sequence, log_dir) -> list[Path]:
    """TensorBoard event files: one folder per run, in it one trial per benchmark.

    ``log_dir/<run label>/<benchmark key>/`` holds the hparams (tf_version,
    machine, benchmark, workflow, device, batch_size, run) and scalars
    (samples_per_s per round, median_samples_per_s, step_latency_s/p50..p99,
    startup_s, mfu), so TensorBoard's HParams dashboard can filter and compare
    benchmarks across TF versions and machines.

    Returns:
        The run folders, in the order of ``runs``.
    """
    runs = list(runs)
    if not runs:
        raise ReportError(f"write_tensorboard needs at least one run, got {runs!r}")
    for i, run in enumerate(runs):
        _check_run(run, f"runs[{i}]")
    root = _output_dir(log_dir)
    run_dirs = [root / name for name in _unique_dir_names(run.label for run in runs)]
    taken = [str(d) for d in run_dirs if d.exists()]
    if taken:
        raise ReportError(f"TensorBoard run folder(s) already exist: {taken}; TensorBoard "
                          "would merge old and new events; pick an empty log_dir")
    import tensorflow as tf  # only here: reports do not otherwise need TensorFlow
    from tensorboard.plugins.hparams import api as hp

    for run, run_dir in zip(runs, run_dirs):
        names = _unique_dir_names(run.results)
        for name, result in zip(names, run.results.values()):
            _write_trial(tf, hp, run_dir / name, run, result)
    return run_dirs
