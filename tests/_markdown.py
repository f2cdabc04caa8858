"""Reading the tables of a rendered Markdown page (the report's, a study page's) in tests."""
from __future__ import annotations


def table_rows(md: str, first_column: str) -> list[list[str]]:
    """The body rows of the first table whose header starts with `first_column`, each as its stripped cells."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    out = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        out.append([c.strip() for c in line.strip("|").split(" | ")])
    return out
