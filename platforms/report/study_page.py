"""A study's page on its own (`platbench reproduce`): the report's study section (sections/study.py) rendered
alone, as Markdown and as one self-contained HTML file, the same renderers as the report's."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from platforms.reproduce.protocol import Protocol


def write(proto: Protocol, out: Path, root: Optional[Path] = None) -> tuple[Path, Path]:
    """OUT/study-<study>.md and OUT/study-<study>.html from the runs in the MLflow store."""
    from platforms.report import data, render
    from platforms.report.sections import Report
    from trainer.results import atomic_write_text

    rep = Report(data.gather(None), root=root)
    sections = [rep.study_section(proto)]
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / f"study-{proto.study}.md", out / f"study-{proto.study}.html"
    atomic_write_text(md, render.markdown(rep, sections))
    atomic_write_text(page, render.index_html(rep, sections))
    return md, page
