"""The studies' own statistics, labelled as theirs on the study pages: the AWS-vs-Azure paper's Kruskal–Wallis
test on per-batch values (scipy's, which corrects for ties as the paper's tools do), beside platbench's run-level
test (platforms/core/stats.py), which takes one value per run."""
from __future__ import annotations

from typing import Sequence


def kruskal_wallis(groups: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(H, p) of the Kruskal–Wallis H test over the groups' values (per batch: each batch one value)."""
    from scipy import stats

    if len(groups) < 2 or any(len(g) == 0 for g in groups):
        raise ValueError("Kruskal–Wallis needs two or more groups with values")
    res = stats.kruskal(*[list(map(float, g)) for g in groups])
    return float(res.statistic), float(res.pvalue)
