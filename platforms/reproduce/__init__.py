"""`platbench reproduce STUDY`: one of the five public studies platbench grew from, rerun by its own protocol,
its published figures beside platbench's on a page of its own and in the report (docs/reproduce.md).

Modules (this one imports nothing: the registry imports every platforms/<name>/__init__.py when listing):
  protocol   the protocol files (studies/<study>.yaml) and their pydantic models
  plan       protocol → sweeps and request plans; the dry run and its cost plan
  execute    running a plan through platbench's sweep and load machinery; the study's MLflow tags
  measure    platbench's figure for each published quantity, from the study's runs
  statistic  the studies' own statistics (the paper's Kruskal–Wallis on per-batch values)
  page       the study page on its own (platforms/report/sections/study.py renders it)
  cli        the command: input checks, dry run or run, then the page
"""
