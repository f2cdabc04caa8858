"""The AWS-vs-Azure paper's statistic, Kruskal–Wallis on per-batch values, as scipy computes it, on fixed numbers
(with ties, which scipy corrects for), checked against the textbook formula written out here."""
from __future__ import annotations

import pytest
from scipy import stats

from platforms.reproduce.statistic import kruskal_wallis

AWS = [0.78, 0.80, 0.77, 0.79, 0.78, 0.81, 0.76]            # s/MB per batch (made up, with ties)
AZURE = [0.41, 0.40, 0.78, 0.39, 0.40, 0.42]

def textbook_h(groups):
    """H = 12/(N(N+1)) Σ R_i²/n_i − 3(N+1), over midranks, divided by 1 − Σ(t³−t)/(N³−N) for ties."""
    values = sorted(v for g in groups for v in g)
    n = len(values)
    rank = {v: (values.index(v) + 1 + n - values[::-1].index(v)) / 2 for v in values}
    h = 12 / (n * (n + 1)) * sum(sum(rank[v] for v in g) ** 2 / len(g) for g in groups) - 3 * (n + 1)
    ties = sum(t ** 3 - t for t in (values.count(v) for v in set(values)))
    return h / (1 - ties / (n ** 3 - n))

def test_h_and_p_are_scipys_and_the_textbooks():
    h, p = kruskal_wallis([AWS, AZURE])
    ref = stats.kruskal(AWS, AZURE)
    assert (h, p) == (pytest.approx(ref.statistic, rel=1e-12), pytest.approx(ref.pvalue, rel=1e-12))
    assert h == pytest.approx(textbook_h([AWS, AZURE]), rel=1e-12)
    assert p == pytest.approx(stats.chi2.sf(h, 1), rel=1e-12)   # two groups: one degree of freedom
    assert round(h, 3) == 6.704 and round(p, 4) == 0.0096

def test_three_groups_and_refusals():
    third = [0.60, 0.61, 0.59]
    h, p = kruskal_wallis([AWS, AZURE, third])
    assert h == pytest.approx(stats.kruskal(AWS, AZURE, third).statistic) and 0 < p < 0.01
    with pytest.raises(ValueError, match="two or more groups"):
        kruskal_wallis([AWS])
    with pytest.raises(ValueError, match="two or more groups"):
        kruskal_wallis([AWS, []])
