"""`platbench report --out DIR`: the comparison page from the MLflow runs (and scenarios/).

Writes DIR/report.md, DIR/index.html (one self-contained file: inline CSS, SVG figures as data URIs,
no CDN, opens offline) and DIR/figures/*.svg (what report.md links). Both renderings come from the same
section objects, so they say the same numbers.

Modules:
  data      read every run of the platbench experiment, sorted into training / load / batch / sweep
  stats     mean ± std; exact / permutation tests with one value per run (Mann–Whitney, Kruskal–Wallis,
            Holm), bootstrap ratio of medians, min_runs_per_group, pareto frontier
  figures   matplotlib → SVG
  sections  the sections: what is computed from which metric, and the "no runs with X yet" lines
            (scaling: images/s per device and time to target against world_size)
  render    Markdown and HTML (templates/index.html.j2)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class Written:
    out: Path
    markdown: Path
    html: Path
    figures: list[Path]
    sections: list[str]
    cited: int


def build(out: Path, sweeps: list[str] | None = None, root: Optional[Path] = None, alpha: float = 0.05) -> Written:
    from platforms.report import data, render
    from platforms.report.sections import Report
    from platforms.errors import UserError
    from trainer.results import atomic_write_text

    if not 0 < alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1 (exclusive), not {alpha}")
    store = data.gather(sweeps)
    rep = Report(store, alpha=alpha, root=root)
    sections = rep.build()
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figs = render.figures_of(sections)
    keep = {f"{f.id}.svg" for f in figs}
    for stale in fig_dir.glob("*.svg"):  # figures of an earlier report that this one no longer has
        if stale.name not in keep:
            stale.unlink()
    paths = []
    for f in figs:
        path = fig_dir / f"{f.id}.svg"
        atomic_write_text(path, f.svg)
        paths.append(path)
    md = out / "report.md"
    atomic_write_text(md, render.markdown(rep, sections))
    page = out / "index.html"
    atomic_write_text(page, render.index_html(rep, sections))
    return Written(out, md, page, paths, [s.id for s in sections], len(rep.cited))


def cli_main(out: Path, sweeps: list[str], root: Optional[Path], alpha: float, console) -> None:
    import typer

    w = build(out, sweeps, root, alpha)
    typer.echo(f"wrote {w.markdown} and {w.html} ({len(w.figures)} figure(s), {w.cited} MLflow run(s) cited)")
