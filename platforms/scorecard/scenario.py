"""The scenario a human follows, parsed from Scenario.md, and the markers of its generated part.

Scenario.md is written by people. Each scenario step is a level-3 heading followed by a criterion line:

    ### Step 3. Upload the code / image
    Criterion: `environment`

    What to do, in prose …

Everything between GENERATED_BEGIN and GENERATED_END is written by `platbench scenario render`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from platforms.errors import UserError

GENERATED_BEGIN = ("<!-- platbench:generated:begin (written by `platbench scenario render` from scenarios/*.yaml "
                   "and scoring.yaml; edit those, not this part) -->")
GENERATED_END = "<!-- platbench:generated:end -->"
_BEGIN_PREFIX = "<!-- platbench:generated:begin"
_END_PREFIX = "<!-- platbench:generated:end"

_STEP = re.compile(r"^###\s+Step\s+(\d+)\.\s+(\S.*?)\s*$")
_CRITERION = re.compile(r"^Criterion:\s*`([^`]+)`\s*$")


@dataclass(frozen=True)
class ScenarioStep:
    number: int
    title: str
    criterion: str
    text: str  # the prose under the heading (markdown)
    line: int


@dataclass(frozen=True)
class Document:
    """Scenario.md split into the hand-written part and the generated part."""

    head: str          # everything before the begin marker
    generated: str     # between the markers, without them ("" when there are none yet)
    tail: str          # after the end marker
    has_markers: bool


def split(text: str, display: str) -> Document:
    lines = text.splitlines(keepends=True)
    begins = [i for i, ln in enumerate(lines) if ln.startswith(_BEGIN_PREFIX)]
    ends = [i for i, ln in enumerate(lines) if ln.startswith(_END_PREFIX)]
    if not begins and not ends:
        return Document(text, "", "", False)
    if len(begins) > 1:
        raise UserError(f"{display}:{begins[1] + 1}: generated section: a second begin marker (the first is at line {begins[0] + 1})")
    if len(ends) > 1:
        raise UserError(f"{display}:{ends[1] + 1}: generated section: a second end marker (the first is at line {ends[0] + 1})")
    if not ends:
        raise UserError(f"{display}:{begins[0] + 1}: generated section: begin marker without `{GENERATED_END}` after it")
    if not begins:
        raise UserError(f"{display}:{ends[0] + 1}: generated section: end marker without a begin marker before it")
    b, e = begins[0], ends[0]
    if e < b:
        raise UserError(f"{display}:{e + 1}: generated section: the end marker comes before the begin marker (line {b + 1})")
    return Document("".join(lines[:b]), "".join(lines[b + 1:e]), "".join(lines[e + 1:]), True)


def parse_steps(text: str, display: str, criteria: Sequence[str]) -> list[ScenarioStep]:
    """The numbered steps of the hand-written part; numbered 1, 2, 3 … each with a known criterion."""
    head = split(text, display).head
    lines = head.splitlines()
    starts = [(i, m) for i, ln in enumerate(lines) if (m := _STEP.match(ln))]
    if not starts:
        raise UserError(f"{display}:1: scenario: no steps found (headings like `### Step 1. Register and set up the environment`)")
    steps = []
    for k, (i, m) in enumerate(starts):
        number, title = int(m.group(1)), m.group(2)
        if number != k + 1:
            raise UserError(f"{display}:{i + 1}: scenario step: expected Step {k + 1}, found Step {number}")
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        body = lines[i + 1:end]
        # the step ends at the next heading of level 1-3
        for j, ln in enumerate(body):
            if re.match(r"^#{1,3}\s", ln):
                body = body[:j]
                break
        crit_lines = [(j, c) for j, ln in enumerate(body) if (c := _CRITERION.match(ln))]
        if not crit_lines:
            raise UserError(f"{display}:{i + 1}: scenario step {number}: no `Criterion: `<id>`` line under the heading")
        j, c = crit_lines[0]
        if c.group(1) not in criteria:
            raise UserError(f"{display}:{i + 2 + j}: scenario step {number}: unknown criterion {c.group(1)!r}; "
                            f"scoring.yaml defines {', '.join(criteria)}")
        prose = "\n".join(ln for jj, ln in enumerate(body) if jj != j).strip("\n")
        steps.append(ScenarioStep(number, title, c.group(1), prose, i + 1))
    return steps


def load_steps(path: Path, display: str, criteria: Sequence[str]) -> list[ScenarioStep]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{display}: no such file (the scenario a human follows)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{display}: cannot read: {exc}") from None
    return parse_steps(text, display, criteria)
