"""Loading and validating the rubric and the records, with every problem placed at file:line: field.

Where things are (relative to the project root, the folder holding scoring.yaml):
  scoring.yaml             the rubric
  scenarios/<platform>.yaml the records (or a "not recorded" placeholder)
  scenarios/published/studies.yaml  the studies' published ratings and figures, and platform statuses
  Scenario.md              the scenario text + the generated sections
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import ValidationError

from platforms.errors import UserError
from platforms.scorecard.models import RECORD_FIELDS, STEP_FIELDS, Placeholder, Record, problems_from_validation_error
from platforms.scorecard.rubric import Rubric, check_rubric
from platforms.scorecard.source import Invalid, Positions, Problem, load_yaml, parse_yaml

RUBRIC_FILE = "scoring.yaml"
SCENARIOS_DIR = "scenarios"
SCENARIO_MD = "Scenario.md"


def registered_platforms() -> list[str]:
    from platforms.core import registry

    return registry.names()


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def find(cls, root: Path | None = None) -> Project:
        """The given root, else $PLATBENCH_ROOT, else the nearest folder up from here with scoring.yaml."""
        if root is None and os.environ.get("PLATBENCH_ROOT"):
            root = Path(os.environ["PLATBENCH_ROOT"])
        if root is not None:
            root = Path(root)
            if not (root / RUBRIC_FILE).is_file():
                raise UserError(f"{root / RUBRIC_FILE}: no such file (the project root holds the rubric)")
            return cls(root)
        here = Path.cwd().resolve()
        for folder in (here, *here.parents):
            if (folder / RUBRIC_FILE).is_file():
                return cls(folder)
        raise UserError(f"no {RUBRIC_FILE} in {here} or any folder above it; run inside a platbench checkout or pass --root")

    @property
    def rubric_path(self) -> Path:
        return self.root / RUBRIC_FILE

    @property
    def scenarios_dir(self) -> Path:
        return self.root / SCENARIOS_DIR

    @property
    def scenario_md(self) -> Path:
        return self.root / SCENARIO_MD

    def record_path(self, platform: str) -> Path:
        return self.scenarios_dir / f"{platform}.yaml"

    def record_paths(self) -> list[Path]:
        if not self.scenarios_dir.is_dir():
            return []
        return sorted(p for p in self.scenarios_dir.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))

    def relative(self, path: Path) -> str:
        """Paths as the scorecard files name each other: relative to the project root when inside it."""
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def display(self, path: Path) -> str:
        """Paths in messages: relative to the working directory when inside it, else absolute."""
        path = Path(path)
        try:
            return Path(os.path.abspath(path)).relative_to(Path.cwd()).as_posix()
        except ValueError:
            return str(Path(os.path.abspath(path)))


# -------------------------------------------------------------------------------------------- rubric
def load_rubric(path: Path, display: str | None = None) -> Rubric:
    data, pos = load_yaml(path, display)
    return check_rubric(data, pos)


# ------------------------------------------------------------------------------------------- records
def check_record(data: Any, pos: Positions, rubric: Rubric | None, platforms: Sequence[str], stem: str | None,
                 planned: Sequence[str] = (), scenario_steps: Sequence[int] | None = None) -> Record | Placeholder:
    """Validate parsed record data; raise Invalid listing every problem.

    A file with `status` is a placeholder ("not recorded"), allowed for the registered platforms and the
    ones the published studies file names (`planned`: platforms platbench is getting).
    Without a rubric (scoring.yaml is broken) criteria and ratings are not checked, only the shape; without
    `scenario_steps` (Scenario.md's step numbers) neither are the steps' numbers."""
    if not isinstance(data, dict):
        raise Invalid([pos.problem((), f"a record is a mapping of fields ({', '.join(RECORD_FIELDS[:4])}, steps, …)")])
    if "status" in data:
        try:
            holder = Placeholder.model_validate(data, context={"platforms": list(dict.fromkeys([*platforms, *planned]))})
        except ValidationError as exc:
            raise Invalid(problems_from_validation_error(exc, pos)) from None
        if stem is not None and stem != holder.platform:
            raise Invalid([pos.problem(("platform",), f"platform {holder.platform!r} does not match the file name; "
                                                      "records live in scenarios/<platform>.yaml")])
        return holder
    step_problems = _unknown_steps(data, pos, scenario_steps)
    try:
        record = Record.model_validate(data, context={"rubric": rubric, "platforms": list(platforms)})
    except ValidationError as exc:  # with the step numbers' problems: every problem in the file at once
        raise Invalid(sorted(problems_from_validation_error(exc, pos) + step_problems, key=lambda p: p.line)) from None

    problems: list[Problem] = []
    if stem is not None and stem != record.platform:
        problems.append(pos.problem(("platform",), f"platform {record.platform!r} does not match the file name; "
                                                   f"records live in scenarios/<platform>.yaml"))
    seen_steps: dict[int, int] = {}
    for i, n in enumerate(record.scenario_steps_done):
        if n in seen_steps:
            problems.append(pos.problem(("scenario_steps_done", i), f"step {n} is listed twice"))
        seen_steps.setdefault(n, i)
    problems += step_problems
    seen: dict[str, int] = {}
    for i, ov in enumerate(record.overrides):
        loc = ("overrides", i)
        if ov.criterion in seen:
            problems.append(pos.problem(loc + ("criterion",), f"a second override for {ov.criterion!r} (first is overrides[{seen[ov.criterion]}])"))
            continue
        seen[ov.criterion] = i
        if not record.steps_for(ov.criterion):
            problems.append(pos.problem(loc + ("criterion",), f"no steps are recorded for {ov.criterion!r}, so it stays not rated; "
                                                              "record the steps instead of overriding"))
    if problems:
        raise Invalid(sorted(problems, key=lambda p: p.line))
    return record


def _unknown_steps(data: dict, pos: Positions, scenario_steps: Sequence[int] | None) -> list[Problem]:
    """Step numbers (scenario_steps_done, steps[].scenario_step) that Scenario.md does not have, read from the
    raw data so they are reported beside the record's other problems."""
    if scenario_steps is None:
        return []
    known = (f"Scenario.md has steps {min(scenario_steps)}–{max(scenario_steps)}" if scenario_steps
             else "Scenario.md has no steps")
    found = []
    done = data.get("scenario_steps_done")
    for i, n in enumerate(done if isinstance(done, list) else []):
        if type(n) is int and n not in scenario_steps:
            found.append(pos.problem(("scenario_steps_done", i), f"no step {n}: {known}"))
    steps = data.get("steps")
    for i, st in enumerate(steps if isinstance(steps, list) else []):
        n = st.get("scenario_step") if isinstance(st, dict) else None
        if type(n) is int and n not in scenario_steps:
            found.append(pos.problem(("steps", i, "scenario_step"), f"no step {n}: {known}"))
    return found


def load_record(path: Path, rubric: Rubric, platforms: Sequence[str], display: str | None = None,
                planned: Sequence[str] = ()) -> Record | Placeholder:
    data, pos = load_yaml(path, display)
    return check_record(data, pos, rubric, platforms, Path(path).stem, planned)


def parse_record(text: str, rubric: Rubric, platforms: Sequence[str], display: str = "<record>",
                 stem: str | None = None) -> Record | Placeholder:
    data, pos = parse_yaml(text, display)
    return check_record(data, pos, rubric, platforms, stem)


@dataclass
class Loaded:
    rubric: Rubric
    records: list[tuple[Path, Record]]
    placeholders: list[tuple[Path, Placeholder]]
    published: Any  # platforms.scorecard.published.Published | None


def load_all(project: Project, files: Sequence[Path] | None = None, platforms: Sequence[str] | None = None) -> Loaded:
    """The rubric, the published studies, the records and placeholders (all of scenarios/, or `files`);
    the first problem is a UserError."""
    from platforms.scorecard.published import load_published

    platforms = registered_platforms() if platforms is None else platforms
    try:
        rubric = load_rubric(project.rubric_path, project.display(project.rubric_path))
        published = load_published(project, rubric)
    except Invalid as exc:
        raise exc.to_user_error() from None
    planned = published.platbench_names if published is not None else []
    numbers = scenario_step_numbers(project, rubric)
    records, holders = [], []
    by_platform: dict[str, Path] = {}
    for path in (project.record_paths() if files is None else files):
        try:
            data, pos = load_yaml(path, project.display(path))
            record = check_record(data, pos, rubric, platforms, Path(path).stem, planned, numbers)
        except Invalid as exc:
            raise exc.to_user_error() from None
        if record.platform in by_platform:
            raise UserError(f"{project.display(path)}:1: platform: {record.platform!r} is also recorded in {project.display(by_platform[record.platform])}")
        by_platform[record.platform] = path
        (holders if isinstance(record, Placeholder) else records).append((path, record))
    return Loaded(rubric, records, holders, published)


def scenario_step_numbers(project: Project, rubric: Rubric) -> list[int] | None:
    """Scenario.md's step numbers (None when the project has no Scenario.md); its problems are a UserError."""
    from platforms.scorecard.scenario import load_steps

    if not project.scenario_md.exists():
        return None
    return [st.number for st in load_steps(project.scenario_md, project.display(project.scenario_md), rubric.ids)]


def load_project(project: Project, files: Sequence[Path] | None = None,
                 platforms: Sequence[str] | None = None) -> tuple[Rubric, list[tuple[Path, Record]]]:
    """The rubric and the records (placeholders checked, then left out); the first problem is a UserError."""
    loaded = load_all(project, files, platforms)
    return loaded.rubric, loaded.records


# ------------------------------------------------------------------------------------------- writing
class _Dumper(yaml.SafeDumper):
    pass


_ODD_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Literal blocks for ordinary multi-line text; double quotes (with escapes) for text holding the
    # rarer line breaks, which PyYAML folds wrongly in other styles.
    if any(b in value for b in _ODD_BREAKS):
        style = '"'
    elif "\n" in value:
        style = "|"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list_representer(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = bool(value) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str_representer)
_Dumper.add_representer(list, _list_representer)


def record_to_data(record: Record) -> dict:
    """Plain data in the canonical field order, leaving out empty optional fields."""
    raw = record.model_dump(mode="python", exclude_none=True)
    out: dict = {}
    for key in RECORD_FIELDS:
        value = raw.get(key)
        if value in (None, [], {}) and key not in ("steps",):
            continue
        if key == "steps":
            value = [{k: s[k] for k in STEP_FIELDS if k in s and s[k] not in (None, [])} for s in value]
            for s in value:
                if isinstance(s["minutes"], float) and s["minutes"].is_integer():
                    s["minutes"] = int(s["minutes"])
        if key == "evidence":
            value = [v if v.get("caption") else v["link"] for v in value]
        out[key] = value
    return out


def dump_record(record: Record) -> str:
    header = (f"# platbench scenario record for {record.platform}: the steps a human took, scored by scoring.yaml.\n"
              "# Format: Scenario.md, section 'Recording'. Check it with `platbench scenario validate`.\n")
    body = yaml.dump(record_to_data(record), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
                     default_flow_style=False)
    return header + body
