"""Plain-words summaries and reports of benchmark results. Reports never measure.

- :mod:`~kbench.report.summary`: the end of a benchmark session, fed the run it
  is about to store (:func:`summary_lines`).
- :mod:`~kbench.report.document`: a comparison matrix of stored runs
  (:class:`kbench.compare.Matrix`) as Markdown and a self-contained HTML page
  with plots (:func:`write_report`; the figures in :mod:`~kbench.report.plots`,
  what both read off the matrix in :mod:`~kbench.report.tables`).
- :mod:`~kbench.report.exports`: runs for github-action-benchmark
  (:func:`github_benchmark_json`; startups and exact counters,
  :func:`github_smaller_json`; ``kbench memory``'s peaks and slopes,
  :func:`memory_github_json`) and TensorBoard (:func:`write_tensorboard`;
  ``kbench memory`` runs, :func:`write_memory_tensorboard`).
- :mod:`~kbench.report.memory`: ``kbench memory`` runs as a report of their peaks
  and leak checks (:func:`write_memory_report`).
"""

from kbench.report.document import (DEFAULT_TITLE, REPORT_DIR, THROUGHPUT_UNIT, Section, Text,
                                    make_plots, render_html, render_markdown, report_sections,
                                    write_report)
from kbench.report.exports import (counter_scalars, github_benchmark_json, github_smaller_json,
                                   memory_github_json, memory_scalars, memory_values,
                                   tensorboard_hparams, write_memory_tensorboard,
                                   write_tensorboard)
from kbench.report.memory import memory_sections, write_memory_report
from kbench.report.summary import (A_A_PREFIX, COMPUTE_ONLY, DIAGNOSTICS,
                                   HARNESS_OVERHEAD_TARGET, INPUT_BOUND, INPUT_ONLY,
                                   Diagnostic,
                                   bounding_resource, overlap_gain, overlap_gain_ci,
                                   summary_lines)
from kbench.report.tables import ReportError

__all__ = [
    "A_A_PREFIX", "COMPUTE_ONLY", "DEFAULT_TITLE", "DIAGNOSTICS", "HARNESS_OVERHEAD_TARGET",
    "INPUT_BOUND", "INPUT_ONLY", "REPORT_DIR", "bounding_resource", "overlap_gain_ci",
    "THROUGHPUT_UNIT", "Diagnostic", "ReportError", "Section", "Text", "counter_scalars",
    "github_benchmark_json", "github_smaller_json", "memory_github_json", "memory_scalars",
    "memory_sections", "memory_values", "write_memory_report", "write_memory_tensorboard",
    "make_plots", "overlap_gain", "render_html", "render_markdown", "report_sections",
    "summary_lines", "tensorboard_hparams", "write_report", "write_tensorboard",
]
