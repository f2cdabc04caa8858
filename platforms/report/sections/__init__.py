"""The report's sections, computed once from the MLflow runs and rendered twice (report.md, index.html)
from the same objects, so both say the same numbers.

Metric names are the ones the launchers log (platforms/core/tracking.py RESULT_METRICS, platforms/core/launch.py,
platforms/core/staging.py, platforms/bench/loadtest.py, platforms/bench/batch.py); a section whose figures
no run has logged says so in one line and shows nothing made up.

Modules:
  report      Report: the sections in order (build())
  context     what every section reads: the runs, alpha, platforms in report order, runs cited
  blocks      Para, Table, Figure, Section
  formats     number formats, short hashes, provenance text
  metrics     the metric names read and per-run values (phases, s/MiB, images/s, inference speed)
  prices      price quote, status (verified or not), basis, billed vs list price
  summary, accuracy, scaling, phases, transfer, latency, cost, scorecards, runs, method: one module per
              section or per few related ones
"""
from platforms.report.sections.blocks import Figure, Para, Section, Table
from platforms.report.sections.formats import provenance_text
from platforms.report.sections.prices import BASIS_TEXT
from platforms.report.sections.report import Report

__all__ = ["BASIS_TEXT", "Figure", "Para", "Report", "Section", "Table", "provenance_text"]
