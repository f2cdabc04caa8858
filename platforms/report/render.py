"""report.md and index.html from the same sections (platforms/report/sections/).

index.html is one self-contained file: CSS inline, figures as SVG data URIs, no script or font from
anywhere else, so it opens offline and can be mailed or attached as it is. report.md links the same
figures as files in figures/ next to it."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from platforms.report.sections import Figure, Para, Report, Section, Table, provenance_text

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_EM = re.compile(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])")
_SIZE = re.compile(r'<svg[^>]*\bwidth="([0-9.]+)pt"[^>]*\bheight="([0-9.]+)pt"')


def inline_html(text: str) -> str:
    """The few inline marks the sections use (`code`, **bold**, *em*), escaped for HTML."""
    out, last = [], 0
    for m in _CODE.finditer(text):
        out.append(_marks(html.escape(text[last:m.start()], quote=False)))
        out.append(f"<code>{html.escape(m.group(1), quote=False)}</code>")
        last = m.end()
    out.append(_marks(html.escape(text[last:], quote=False)))
    return "".join(out)


def plain(text: str) -> str:
    """Text with the inline marks removed, for where HTML can hold no markup (an image's alt text)."""
    return _marks_removed(_CODE.sub(r"\1", text))


def _marks_removed(text: str) -> str:
    return _EM.sub(r"\1", _BOLD.sub(r"\1", text))


def _marks(text: str) -> str:
    return _EM.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", text))


def md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


# ------------------------------------------------------------------------------------------ markdown
def markdown(rep: Report, sections: list[Section], figure_dir: str = "figures") -> str:
    out = ["# platbench — which platform, which model, how much data", "",
           f"Generated {rep.generated} from `{rep.store.uri}` · {len(rep.cited)} MLflow run(s) cited · "
           "the same numbers as `index.html` beside this file.", ""]
    out.append("Contents: " + " · ".join(f"[{s.title}](#{s.id})" for s in sections))
    out.append("")
    for s in sections:
        out += [f'<a id="{s.id}"></a>', "", f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Para):
                prefix = {"empty": "> **No data yet.** ", "verdict": "> ", "note": "_Note:_ "}.get(b.kind, "")
                out += [prefix + b.text, ""]
            elif isinstance(b, Figure):
                out += [f"![{b.title}]({figure_dir}/{b.id}.svg)", "",
                        f"**{b.title}.** {b.caption} Provenance: {provenance_text(b.runs)}.", "",
                        f"<details><summary>{len(b.run_ids)} MLflow run(s) behind this figure</summary>", "",
                        " ".join(f"`{rid}`" for rid in b.run_ids), "", "</details>", ""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(md_cell(c) for c in b.columns) + " |")
                out.append("|" + "|".join("---" for _ in b.columns) + "|")
                for row in b.rows:
                    out.append("| " + " | ".join(md_cell(c) for c in row) + " |")
                out.append("")
                if b.caption:
                    out += [f"_{b.caption}_", ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ html
class _View:
    """Template-facing view of a block (jinja2 autoescapes; pre-built HTML is marked safe)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _views(sections: list[Section]):
    from markupsafe import Markup

    out = []
    for s in sections:
        blocks = []
        for b in s.blocks:
            if isinstance(b, Para):
                blocks.append(_View(kind_name="para", kind=b.kind, html=Markup(inline_html(b.text))))
            elif isinstance(b, Figure):
                m = _SIZE.search(b.svg)
                w, h = (round(float(m.group(1)) * 4 / 3), round(float(m.group(2)) * 4 / 3)) if m else (800, 450)
                blocks.append(_View(kind_name="figure", id=b.id, title=plain(b.title), title_html=Markup(inline_html(b.title)),
                                    run_ids=b.run_ids, width=w, height=h,
                                    b64=base64.b64encode(b.svg.encode()).decode(),
                                    caption_html=Markup(inline_html(b.caption)),
                                    provenance_html=Markup(inline_html("Provenance: " + provenance_text(b.runs) + "."))))
            elif isinstance(b, Table):
                rows = []
                for i, row in enumerate(b.rows):
                    runs = " ".join(b.run_ids[i]) if i < len(b.run_ids) else ""
                    rows.append(_View(runs=runs, cells=[_View(html=Markup(inline_html(c)), wrap=len(c) > 60) for c in row]))
                blocks.append(_View(kind_name="table", id=b.id, columns=[Markup(inline_html(c)) for c in b.columns],
                                    rows_html=rows,
                                    caption=b.caption, caption_html=Markup(inline_html(b.caption))))
        out.append(_View(id=s.id, title_html=Markup(inline_html(s.title)), blocks=blocks))
    return out


def index_html(rep: Report, sections: list[Section]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
                             autoescape=True, keep_trailing_newline=True)
    return env.get_template("index.html.j2").render(
        generated=rep.generated, uri=rep.store.uri, n_cited=len(rep.cited), sections=_views(sections))


def figures_of(sections: list[Section]) -> list[Figure]:
    return [b for s in sections for b in s.blocks if isinstance(b, Figure)]
