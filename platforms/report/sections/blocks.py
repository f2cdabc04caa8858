"""What a section is made of: paragraphs, tables and figures, rendered alike to report.md and
index.html (platforms/report/render.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from platforms.report.data import Run


@dataclass
class Para:
    text: str
    kind: str = "p"          # p | empty (no data yet) | verdict (a statistical finding) | note


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    run_ids: list[list[str]] = field(default_factory=list)  # per row: the runs behind it
    caption: str = ""
    id: str = ""


@dataclass
class Figure:
    id: str
    title: str
    svg: str
    caption: str
    runs: list[Run]

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)

    def add(self, block) -> None:
        self.blocks.append(block)
