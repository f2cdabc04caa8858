"""The workstation side of platbench: launchers, staging, tracking, the CLI, reports.

Nothing here is imported by `trainer/`; this package talks to the trainer through the contract in
DESIGN.md (dataset layout, environment, results.json / metrics.jsonl / log lines).
"""
