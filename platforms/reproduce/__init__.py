"""`platbench reproduce STUDY`: one of the five public studies platbench grew from, rerun by its own protocol,
its published figures beside platbench's on a page of its own and in the report (docs/reproduce.md).

Modules (this one imports nothing heavy: the registry imports every platforms/<name>/__init__.py when listing,
and the CLI's help lists the studies from here):
  protocol   the protocol files (studies/<study>.yaml) and their pydantic models
  plan       protocol → sweeps and request plans; the dry run and its cost plan
  execute    running a plan through platbench's sweep and load machinery; the study's MLflow tags
  measure    platbench's figure for each published quantity, from the study's runs
  statistic  the studies' own statistics (the paper's Kruskal–Wallis on per-batch values)
The command (input checks, dry run or run, then the page) is platforms/reproduce_cli.py, in the CLI's layer;
the page is the report's (platforms/report/sections/study.py, alone: platforms/report/study_page.py).
"""
from __future__ import annotations

import os
from pathlib import Path

STUDIES_DIR = Path(__file__).with_name("studies")


def studies_dir() -> Path:
    """The protocols: the shipped ones, or a folder of one's own (PLATBENCH_STUDIES), e.g. a study's protocol
    scaled down or a new study written in the same schema."""
    return Path(os.environ.get("PLATBENCH_STUDIES") or STUDIES_DIR)


def study_names() -> list[str]:
    return sorted(p.stem for p in studies_dir().glob("*.yaml"))
