"""Scenario scorecards: human-recorded steps (scenarios/<platform>.yaml) → 0–3 usability ratings and
1–5 developer-experience ratings, beside the public studies' published ones.

A human records the steps they actually took on a platform; the rubrics in scoring.yaml turn each
criterion's steps into a rating, so two people scoring the same record get the same table. What the
studies published (and where each of their platforms stands today) is data in
scenarios/published/studies.yaml, shown attributed, never scored or mixed with records.

This package sits on the CLI's start path: it imports only pydantic, PyYAML, typer and rich.

Modules:
  source    YAML loading that keeps line numbers; Problem / Invalid (file:line: field: message)
  rubric    scoring.yaml: the scale, the criteria, ordered rules; validation and evaluation (both rubrics)
  models    the record format (scenarios/<platform>.yaml), and the "not recorded" placeholder
  published the studies' published ratings and figures and the platforms' statuses
  loader    load + validate records and the rubric, collecting every problem
  scenario  the ten scenario steps, parsed from Scenario.md
  scoring   record + rubric → a rating per criterion, with the rule that fired
  table     the comparison tables (rows = platforms, ours and published; columns = status, source, criteria, total)
  render    Scenario.md's generated sections
  recorder  the interactive recorder (rich prompts, a stopwatch per step, resumable)
  cli       the `platbench scenario` typer sub-app
"""
