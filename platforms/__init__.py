"""The workstation side of platbench: one package per platform, shared machinery (core/),
features (bench/, report/, scorecard/) and the CLI (docs/design.md, "Platforms").

Nothing here is imported by `trainer/`; this package talks to the trainer through the contract in
docs/design.md (dataset layout, environment, results.json / metrics.jsonl / log lines).
"""
