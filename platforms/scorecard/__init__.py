"""Scenario scorecards: human-recorded steps (scenarios/<platform>.yaml) → 0–3 usability ratings.

A human records the steps they actually took on a platform; the rubric in scoring.yaml turns each
criterion's steps into a rating, so two people scoring the same record get the same table.

This package sits on the CLI's start path: it imports only pydantic, PyYAML, typer and rich.

Modules:
  source    YAML loading that keeps line numbers; Problem / Invalid (file:line: field: message)
  rubric    scoring.yaml: the scale, the criteria, ordered rules; validation and evaluation
  models    the record format (scenarios/<platform>.yaml)
  loader    load + validate records and the rubric, collecting every problem
  scenario  the ten scenario steps, parsed from Scenario.md
  scoring   record + rubric → a rating per criterion, with the rule that fired
  table     the comparison table (rows = platforms, columns = criteria + total)
  render    Scenario.md's generated sections
  recorder  the interactive recorder (rich prompts, a stopwatch per step, resumable)
  cli       the `platbench scenario` typer sub-app
"""
