"""`platbench scenario …`: record, validate, score, tabulate and render the usability scorecards."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from platforms.errors import UserError

# pydantic, PyYAML and the scorecard modules are imported inside the commands, so that the rest of
# `platbench` does not pay for them at start-up.

app = typer.Typer(
    help="Usability scorecards: record the scenario's steps on a platform (scenarios/<platform>.yaml), "
         "then score them with the rubrics (scoring.yaml) into 0–3 usability and 1–5 developer-experience "
         "ratings, beside the public studies' published ratings (scenarios/published/studies.yaml).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ROOT = typer.Option(None, "--root", help="Project root (holds scoring.yaml, scenarios/, Scenario.md). "
                                         "Default: $PLATBENCH_ROOT, else the nearest folder up from here with scoring.yaml.",
                    file_okay=False)
FILES = typer.Argument(None, help="Record files (default: every scenarios/*.yaml); scoring.yaml is checked too.",
                       show_default=False)


class Format(str, Enum):
    md = "md"
    json = "json"


class Which(str, Enum):
    usability = "usability"
    developer_experience = "developer_experience"
    both = "both"


def _rel(project):
    return project.relative


def _dx_count(rubric) -> str:
    dx = rubric.developer_experience
    return "" if dx is None else f"; developer_experience: {len(dx.criteria)} criteria"


def _echo_problem_lines(problems) -> None:
    for p in problems:
        typer.echo(str(p), err=True)


@app.command()
def validate(files: Optional[List[Path]] = FILES, root: Optional[Path] = ROOT) -> None:
    """Check scoring.yaml, the published studies file, the records and Scenario.md's steps; list every problem
    with file, line and field."""
    from platforms.scorecard import loader
    from platforms.scorecard.loader import Project
    from platforms.scorecard.scenario import load_steps
    from platforms.scorecard.source import Invalid

    project = Project.find(root)
    platforms = loader.registered_platforms()
    problems: list[str] = []
    bad_files = 0
    rubric = None
    numbers = None  # Scenario.md's step numbers, once it is read
    try:
        rubric = loader.load_rubric(project.rubric_path, project.display(project.rubric_path))
        typer.echo(f"ok   {project.display(project.rubric_path)} ({len(rubric.criteria)} criteria{_dx_count(rubric)})")
    except Invalid as exc:
        problems += map(str, exc.problems)
        bad_files += 1
    if rubric is not None and project.scenario_md.exists():
        try:
            steps = load_steps(project.scenario_md, project.display(project.scenario_md), rubric.ids)
            numbers = [st.number for st in steps]
            typer.echo(f"ok   {project.display(project.scenario_md)} ({len(steps)} scenario steps)")
        except UserError as exc:
            problems.append(str(exc))
            bad_files += 1
    planned: list[str] = []
    if rubric is not None:
        from platforms.scorecard.published import PUBLISHED_FILE, check_published

        pub_path = project.root / PUBLISHED_FILE
        if pub_path.exists():
            try:
                data, pos = loader.load_yaml(pub_path, project.display(pub_path))
                pub = check_published(data, pos, rubric)
                planned = pub.platbench_names
                typer.echo(f"ok   {project.display(pub_path)} ({len(pub.platforms)} platforms, {len(pub.ratings)} published "
                           f"ratings, {len(pub.figures)} published figures)")
            except Invalid as exc:
                problems += map(str, exc.problems)
                bad_files += 1
    paths = project.record_paths() if not files else [f for f in files if f.resolve() != project.rubric_path.resolve()]
    seen: dict[str, str] = {}
    for path in paths:
        shown = project.display(path)
        try:
            data, pos = loader.load_yaml(path, shown)
            record = loader.check_record(data, pos, rubric, platforms, path.stem, planned, numbers)
        except Invalid as exc:
            problems += map(str, exc.problems)
            bad_files += 1
            continue
        if record.platform in seen:
            problems.append(f"{shown}:{pos.line(('platform',))}: platform: {record.platform!r} is also recorded in {seen[record.platform]}")
            bad_files += 1
            continue
        seen[record.platform] = shown
        if not hasattr(record, "steps"):
            typer.echo(f"ok   {shown} (not recorded)")
            continue
        typer.echo(f"ok   {shown} ({len(record.steps)} steps)" + ("" if rubric is not None else
                                                                   " (shape only: scoring.yaml is invalid)"))
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        n = len(problems)
        raise UserError(f"{n} problem{'s' if n != 1 else ''} in {bad_files} file{'s' if bad_files != 1 else ''}")


@app.command()
def score(files: Optional[List[Path]] = FILES, as_json: bool = typer.Option(False, "--json", help="Print JSON."),
          root: Optional[Path] = ROOT) -> None:
    """Rate each record per criterion with both rubrics, naming the rule that fired."""
    from platforms.scorecard import loader
    from platforms.scorecard.loader import Project
    from platforms.scorecard.scoring import score as score_record

    project = Project.find(root)
    rubric, records = loader.load_project(project, files or None)
    if not records:
        raise UserError(f"no records to score in {project.display(project.scenarios_dir)}/ (record one with `platbench scenario record PLATFORM`)")
    show = _rel(project)
    dx = rubric.developer_experience
    cards = [(path, score_record(rubric, rec), score_record(dx, rec) if dx is not None else None) for path, rec in records]
    if as_json:
        typer.echo(json.dumps([{"file": show(p), **c.to_json(),
                                **({"developer_experience": d.to_json()} if d is not None else {})}
                               for p, c, d in cards], indent=2, ensure_ascii=False))
        return
    width = max(len(c.title) for c in rubric.criteria + (dx.criteria if dx is not None else []))
    for i, (path, card, dcard) in enumerate(cards):
        if i:
            typer.echo("")
        typer.echo(f"{card.platform}: {card.title} ({show(path)})")
        _echo_card(card, width)
        if dcard is not None:
            typer.echo(f"  {dx.title or 'Developer experience'}:")
            _echo_card(dcard, width)


def _echo_card(card, width: int) -> None:
    for s in card.scores:
        typer.echo(f"  {s.title:<{width}}  {s.cell():<9}  {s.rule_text()}"
                   + (f"  [{s.evidence.describe()}]" if s.evidence.steps else ""))
        typer.echo(f"  {'':<{width}}  {'':<9}  {s.computed.why}")
        if s.override is not None:
            typer.echo(f"  {'':<{width}}  {'':<9}  OVERRIDE to {s.override.rating}: {s.override.reason}")
    typer.echo(f"  {'Total':<{width}}  {card.total.cell()}")


@app.command()
def table(fmt: Format = typer.Option(Format.md, "--format", help="md (Markdown) or json."),
          which: Which = typer.Option(Which.both, "--rubric", help="usability (0–3, six criteria), developer_experience "
                                                                   "(1–5, the AutoML study's five) or both."),
          output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file (atomically) instead of stdout.",
                                                dir_okay=False),
          root: Optional[Path] = ROOT) -> None:
    """The comparison tables: a row per platform platbench has or is getting and per platform of the two
    studies, with its status; the studies' own ratings in rows marked published, attributed."""
    from platforms.scorecard import loader, table as table_mod
    from platforms.scorecard.loader import Project
    from platforms.scorecard.source import atomic_write_text

    project = Project.find(root)
    platforms = loader.registered_platforms()
    got = loader.load_all(project, None, platforms)
    rubric = got.rubric
    kinds = ["usability", "developer_experience"] if which == Which.both else [which.value]
    if "developer_experience" in kinds and rubric.developer_experience is None:
        if which != Which.both:
            raise UserError(f"{project.display(project.rubric_path)} has no developer_experience rubric")
        kinds = ["usability"]
    tables = {k: table_mod.build(rubric, got.records, platforms, got.published, got.placeholders, k) for k in kinds}
    show = _rel(project)
    if fmt == Format.json:
        docs = {k: table_mod.to_data(rubric, rows, show, got.published, k) for k, rows in tables.items()}
        text = json.dumps(docs[kinds[0]] if len(kinds) == 1 else docs, indent=2, ensure_ascii=False) + "\n"
    else:
        parts = []
        for k, rows in tables.items():
            md = table_mod.to_markdown(rubric, rows, show, got.published, k)
            if len(kinds) > 1:
                title = "Usability (0–3)" if k == "usability" else (rubric.developer_experience.title or k)
                md = f"## {title}\n\n{md}"
            parts.append(md)
        text = "\n".join(parts)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(output, text)
        typer.echo(f"wrote {output}")


def rendered(project) -> tuple[str, str]:
    """(current Scenario.md, what `render` would write)."""
    from platforms.scorecard import loader, render as render_mod
    from platforms.scorecard.scenario import parse_steps

    rubric, records = loader.load_project(project, None)
    shown = project.display(project.scenario_md)
    try:
        text = project.scenario_md.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{shown}: no such file (the scenario a human follows)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{shown}: cannot read: {exc}") from None
    steps = parse_steps(text, shown, rubric.ids)
    block = render_mod.generated(rubric, records, steps, _rel(project))
    return text, render_mod.update(text, shown, block)


@app.command()
def render(check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if Scenario.md is out of date."),
           root: Optional[Path] = ROOT) -> None:
    """Regenerate Scenario.md's recorded sections from scenarios/*.yaml and scoring.yaml."""
    from platforms.scorecard.loader import Project
    from platforms.scorecard.source import atomic_write_text

    project = Project.find(root)
    old, new = rendered(project)
    shown = project.display(project.scenario_md)
    if old == new:
        typer.echo(f"{shown} is up to date")
        return
    if check:
        typer.echo(f"{shown} is out of date; run `platbench scenario render`", err=True)
        raise typer.Exit(1)
    atomic_write_text(project.scenario_md, new)
    typer.echo(f"updated {shown}")


@app.command()
def record(platform: str = typer.Argument(..., help="A platform platbench knows (`local`, …)."),
           step: Optional[int] = typer.Option(None, "--step", help="Record (more) actions for this scenario step only."),
           root: Optional[Path] = ROOT) -> None:
    """Walk through Scenario.md step by step with prompts and a stopwatch, saving after every step."""
    from rich.console import Console

    from platforms.scorecard import loader
    from platforms.scorecard.loader import Project
    from platforms.scorecard.recorder import Recorder
    from platforms.scorecard.scenario import load_steps
    from platforms.scorecard.source import Invalid

    project = Project.find(root)
    platforms = loader.registered_platforms()
    if platform not in platforms:
        raise UserError(f"unknown platform {platform!r}; platbench knows {', '.join(platforms)}")
    try:
        rubric = loader.load_rubric(project.rubric_path, project.display(project.rubric_path))
    except Invalid as exc:
        raise exc.to_user_error() from None
    steps = load_steps(project.scenario_md, project.display(project.scenario_md), rubric.ids)
    console = Console(highlight=False)
    rec = Recorder(project, platform, rubric, steps, platforms, console)
    shown = project.display(project.record_path(platform))
    try:
        rec.run(step)
    except KeyboardInterrupt:
        typer.echo(f"\nInterrupted. Every answered step is saved in {shown}; "
                   f"run `platbench scenario record {platform}` to resume.", err=True)
        raise typer.Exit(130) from None
    except EOFError:
        typer.echo(f"\nInput ended. Every answered step is saved in {shown}; "
                   f"run `platbench scenario record {platform}` to resume.", err=True)
        raise typer.Exit(1) from None
