"""Reports of a comparison matrix: Markdown and a self-contained HTML page, with plots.

A report of a :class:`kbench.compare.Matrix` is a list of sections, each a
table and maybe a plot. The tables are built once and rendered to Markdown or
to one HTML page (CSS inline, plots as data URIs), so the two never disagree.
Reports never measure.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kbench import _files, _format, compare, stats
from kbench import fingerprint as kfingerprint
from kbench.record import LATENCY_QUANTILES
from kbench.report import plots as figures
from kbench.report.tables import (ReportError, check_matrix, has_comparisons, latency_rows,
                                  startup_rows)


DEFAULT_TITLE = "kbench report"
REPORT_DIR = "reports"
THROUGHPUT_UNIT = "samples/s"
# Fingerprint fields shown in the "differences" list of one run, at most; the
# rest are counted. Enough for a TF upgrade (versions, git hash, build, platform).
MAX_DIFFS_SHOWN = 12


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


def _run_header(matrix, i: int, *, short: bool = False) -> str:
    base = " (baseline)" if i == matrix.baseline else ""
    return f"{i}{base}" if short else f"{i}: {matrix.runs[i].label}{base}"


def _comparison_settings(matrix) -> str:
    if not has_comparisons(matrix):
        return "No comparisons: a single run."
    return (f"A change is significant when its p < {matrix.alpha:g} and the ratio is beyond "
            f"{matrix.min_factor:g}x either way, tested only where the runs' design supports "
            "it: Mann-Whitney on session medians (several sessions a side), or the paired "
            "estimate of lockstep runs (kbench ab, worker offsets counted). One session a "
            "side is untested: its ratio includes session drift.")


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
    return Text(_format.summary(cell.summary))


def _ratio_text(cell) -> Text:
    c = cell.comparison
    if c.verdict == stats.UNTESTED:
        return Text(f"{_format.ratio(c.ratio, c.ci_low, c.ci_high)} untested")
    text = f"{_format.ratio(c.ratio, c.ci_low, c.ci_high)} {c.verdict} (p={c.p_value:.2g})"
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
                   ("Bold cells are significant changes; untested: one session a side (the "
                    "ratio includes session drift).",), plot="ratios")


def _latency_text(matrix, key: str, i: int) -> Text:
    latencies = matrix.runs[i].results[key].step_latency_s
    if latencies is None:
        return Text("n/a")
    return Text(" / ".join(_format.milliseconds(getattr(latencies, q))
                           for q in LATENCY_QUANTILES))


def _latency_section(matrix) -> Section:
    runs = range(len(matrix.runs))
    rows = tuple((Text(key), *(_latency_text(matrix, key, i) for i in runs))
                 for key in matrix.keys)
    return Section("Step latency (ms: p50 / p90 / p99)",
                   ("benchmark", *(_run_header(matrix, i, short=True) for i in runs)),
                   rows, plot="latency")


def _startup_text(matrix, key: str, i: int) -> Text:
    record = matrix.runs[i].results[key]
    text = _format.startup(record.startup_s, record.startup_split)
    grown = matrix.startup_factor(key, i)
    beyond = grown is not None and grown > compare.DEFAULT_MAX_STARTUP_FACTOR
    return Text(text, "differs" if beyond else "")


def _startup_section(matrix) -> Section | None:
    """Each benchmark's startup and its parts per run (None: no run has a split)."""
    if not startup_rows(matrix):
        return None
    keys = [key for key in matrix.keys
            if any(run.results[key].startup_s is not None for run in matrix.runs)]
    runs = range(len(matrix.runs))
    rows = tuple((Text(key), *(_startup_text(matrix, key, i) for i in runs)) for key in keys)
    return Section("Startup (s: setup + tracing + compilation and first run -> from the run's "
                   "start to its first step's end; lower is better)",
                   ("benchmark", *(_run_header(matrix, i, short=True) for i in runs)), rows,
                   ("Tracing is TensorFlow's own clock of tf.function's graph building; "
                    "compilation is the rest of the first step's excess over a steady one "
                    "(Grappler, XLA, the first run), which TensorFlow does not clock apart. A "
                    "record without TensorFlow's clock shows tracing and compilation as one "
                    "part. Bold: a startup beyond the startup gate's "
                    f"{compare.DEFAULT_MAX_STARTUP_FACTOR:g}x of the baseline run's "
                    "(kbench gate --max-startup-factor).",),
                   plot="startup")


def _counters_section(matrix) -> Section | None:
    """The exact counters per benchmark and run, bold where they differ from the
    baseline run's (None: no run has any)."""
    keys = [key for key in matrix.keys
            if any(matrix.counters(key, i) is not None for i in range(len(matrix.runs)))]
    if not keys:
        return None
    runs = range(len(matrix.runs))
    rows = []
    for key in keys:
        texts = [_format.counters(matrix.counters(key, i)) for i in runs]
        base = texts[matrix.baseline]
        rows.append((Text(key), *(Text(t, "differs" if t != base else "") for t in texts)))
    return Section("Exact counters (traces of the compiled step, graph nodes, XLA "
                   "compilations)",
                   ("benchmark", *(_run_header(matrix, i, short=True) for i in runs)),
                   tuple(rows),
                   ("Each benchmark's compiled step functions summed (kbench.counters). They "
                    "are the same on every run of one TensorFlow version and workflow, so a "
                    "bold cell, different from the baseline run's, is a change of TensorFlow "
                    "or of the workflow, whatever the noise.",), plot="counters")


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
    check_matrix(matrix)
    sections = [_runs_section(matrix), _throughput_section(matrix)]
    if has_comparisons(matrix):
        sections.append(_ratio_section(matrix))
    if latency_rows(matrix):
        sections.append(_latency_section(matrix))
    for section in (_startup_section(matrix), _counters_section(matrix)):
        if section is not None:
            sections.append(section)
    sections.append(_fingerprint_section(matrix))
    return sections


def _check_plot_names(plots: Mapping) -> None:
    unknown = sorted(set(plots) - set(figures.PLOTS))
    if unknown:
        raise ReportError(f"unknown plot name(s) {unknown}; known: {sorted(figures.PLOTS)}")


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: Text) -> str:
    body = text.text.replace("|", "\\|").replace("\n", " ")
    return f"**{body}**" if text.mark else body


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Text]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(Text(h)) for h in header) + " |",
             "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
    return lines


def sections_markdown(title: str, sections: Sequence[Section],
                      plots: Mapping[str, str]) -> str:
    """Sections as a Markdown page, each followed by its plot where ``plots`` has it."""
    lines = [f"# {title}", ""]
    for section in sections:
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


def render_markdown(matrix, *, title: str = DEFAULT_TITLE,
                    plots: Mapping[str, str] | None = None) -> str:
    """The report as Markdown; ``plots`` maps plot names to (relative) PNG paths to link."""
    plots = dict(plots or {})
    _check_plot_names(plots)
    return sections_markdown(title, report_sections(matrix), plots)


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


def sections_html(title: str, sections: Sequence[Section], plots: Mapping[str, bytes]) -> str:
    """Sections as one self-contained HTML page: CSS inline, plots as base64 data URIs."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        out += ["<section>", f"<h2>{html.escape(section.heading)}</h2>",
                *_html_notes(section)]
        if section.rows:
            out += _html_table(section.header, section.rows)
        if section.plot in plots:
            out.append(_html_image(section.plot, plots[section.plot]))
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def render_html(matrix, *, title: str = DEFAULT_TITLE,
                plots: Mapping[str, bytes] | None = None) -> str:
    """The report as one self-contained HTML page: CSS inline, plots as base64 data URIs.

    Args:
        plots: PNG bytes by plot name, as :func:`make_plots` returns; made here if None.
    """
    check_matrix(matrix)
    plots = make_plots(matrix) if plots is None else dict(plots)
    _check_plot_names(plots)
    return sections_html(title, report_sections(matrix), plots)


def make_plots(matrix) -> dict[str, bytes]:
    """PNG bytes by plot name (plots.PLOTS) for the plots the matrix has data for."""
    check_matrix(matrix)
    return figures.make_plots(matrix)


# --------------------------------------------------------------------------- files


def output_dir(out_dir) -> Path:
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
    check_matrix(matrix)
    return write_sections(report_sections(matrix), make_plots(matrix), out_dir, name=name,
                          title=title)


def write_sections(sections: Sequence[Section], pngs: Mapping[str, bytes], out_dir, *,
                   name: str, title: str) -> dict[str, Path]:
    """Write sections as ``name.md`` and ``name.html`` and their plots as
    ``name-<plot>.png`` into ``out_dir``; the paths by kind ("markdown", "html", plots)."""
    _check_file_name(name)
    out = output_dir(out_dir)
    paths = {plot: _files.atomic_write_bytes(out / f"{name}-{plot}.png", png)
             for plot, png in pngs.items()}
    markdown = sections_markdown(title, sections, {p: f.name for p, f in paths.items()})
    paths["markdown"] = _files.atomic_write_bytes(out / f"{name}.md", markdown.encode("utf-8"))
    page = sections_html(title, sections, pngs)
    paths["html"] = _files.atomic_write_bytes(out / f"{name}.html", page.encode("utf-8"))
    return paths
