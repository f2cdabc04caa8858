"""platforms/core/stats.py against scipy's exact tests and hand calculations: the report may only call a
difference that a test valid at its sample size calls, and must know when no outcome could."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from platforms.core import stats


# ------------------------------------------------------------------------------------------------ tests
def test_three_vs_three_fully_separated_is_not_called():
    """χ² Kruskal–Wallis says p = 0.0495 here; the exact test says 0.1: not a difference at 0.05."""
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    assert sp.kruskal(a, b).pvalue == pytest.approx(0.0495, abs=1e-4)  # the approximation the issue caught
    assert stats.mann_whitney(a, b) == pytest.approx(sp.mannwhitneyu(a, b, method="exact").pvalue) == pytest.approx(0.1)
    cmp = stats.compare("x", {"a": a, "b": b})
    assert not cmp.callable and cmp.needed == 4 and not any(p.real for p in cmp.pairs)
    text = cmp.summary()
    assert "too few runs to call any difference" in text and "a n=3, b n=3" in text and "4 runs per group" in text
    assert "higher than" not in text
    assert cmp.finding() == "too few runs to call any difference; 4 per group needed"


def test_five_vs_five_fully_separated_is_called_at_the_exact_p():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [11.0, 12.0, 13.0, 14.0, 15.0]
    cmp = stats.compare("x", {"a": a, "b": b})
    assert cmp.callable and cmp.p == pytest.approx(2 / math.comb(10, 5)) == pytest.approx(0.0079, abs=1e-4)
    assert cmp.p == pytest.approx(sp.mannwhitneyu(a, b, method="exact").pvalue)
    (pair,) = cmp.pairs
    assert pair.real and pair.verdict() == "b higher than a"
    assert "exact Mann–Whitney" in cmp.summary() and "p = 0.0079" in cmp.summary()
    assert "b higher than a" in cmp.summary() and "median b/a ×4.33" in cmp.summary()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mann_whitney_is_scipys_exact_test(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=6), rng.normal(0.8, size=8)
    assert stats.mann_whitney(a, b) == pytest.approx(sp.mannwhitneyu(a, b, method="exact").pvalue)


def test_mann_whitney_with_ties_is_exact_over_the_permutations():
    """With ties scipy's exact Mann–Whitney ignores them; the permutation distribution of the mid-rank
    sum is exact: enumerate all C(7, 3) splits by hand."""
    from itertools import combinations

    a, b = [1.0, 2.0, 2.0], [2.0, 3.0, 3.0, 4.0]
    pooled = np.array(a + b)
    ranks = sp.rankdata(pooled)
    observed = ranks[:3].sum()
    null = [ranks[list(c)].sum() for c in combinations(range(7), 3)]
    eps = 1e-9
    p = min(1.0, 2 * min(np.mean([x <= observed + eps for x in null]), np.mean([x >= observed - eps for x in null])))
    assert stats.mann_whitney(a, b) == pytest.approx(p)


def test_large_groups_use_seeded_permutations_and_agree_with_the_asymptotic_test():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=30), rng.normal(0.6, size=30)
    p1, p2 = stats.mann_whitney(a, b), stats.mann_whitney(a, b)
    assert p1 == p2  # seeded: the same runs give the same report
    assert not stats.is_exact([30, 30])
    assert p1 == pytest.approx(sp.mannwhitneyu(a, b).pvalue, abs=0.01)


def test_permutation_kruskal_wallis_is_exact_for_small_groups():
    a, b, c = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]
    h, p = stats.kruskal_permutation([a, b, c])
    assert h == pytest.approx(sp.kruskal(a, b, c).statistic)
    # fully separated: only the 3! block orders reach this H among 9!/(3!)^3 = 1680 relabellings
    assert p == pytest.approx(6 / 1680) == pytest.approx(stats.smallest_p_omnibus((3, 3, 3)))
    # two groups: the permutation Kruskal–Wallis is the two-sided exact Mann–Whitney
    assert stats.kruskal_permutation([a, b])[1] == pytest.approx(0.1)


def test_three_groups_holm_over_pairs():
    apart = stats.compare("x", {"a": [1, 2, 3, 4, 5, 6], "b": [11, 12, 13, 14, 15, 16],
                                "c": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]})
    assert apart.callable and apart.rejects
    called = {(p.a, p.b) for p in apart.pairs if p.real}
    assert called == {("a", "b"), ("b", "c")}
    raw = {(p.a, p.b): p.p for p in apart.pairs}
    assert raw[("a", "b")] == pytest.approx(2 / math.comb(12, 6))
    # Holm by hand: the two smallest tie at 2/924, × 3 then × 2 (monotone: both 3 × 2/924); a–c × 1
    adj = {(p.a, p.b): p.p_holm for p in apart.pairs}
    assert adj[("a", "b")] == pytest.approx(3 * 2 / 924) and adj[("b", "c")] == pytest.approx(3 * 2 / 924)
    assert adj[("a", "c")] == pytest.approx(max(raw[("a", "c")], 3 * 2 / 924))
    assert "b higher than a" in apart.summary() and "b higher than c" in apart.summary()
    assert "Holm" in apart.summary()


def test_three_groups_of_four_cannot_call_anything():
    """Pairs of 4 vs 4: smallest p = 2/70 = 0.0286; Holm over 3 pairs needs < 0.05/3."""
    cmp = stats.compare("x", {"a": [1, 2, 3, 4], "b": [11, 12, 13, 14], "c": [21, 22, 23, 24]})
    assert cmp.p < 0.05  # the omnibus alone could reject …
    assert not cmp.callable and cmp.needed == 5 and not any(p.real for p in cmp.pairs)  # … no pair can
    assert "Holm over 3 pairs" in cmp.summary() and "5 runs per group" in cmp.summary()


def test_holm_adjustment_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → monotone 0.02, 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.02]) == pytest.approx([0.02])


def test_same_values_and_lone_groups():
    same = stats.compare("x", {"a": [1, 2, 3, 4], "b": [1.5, 2.5, 3.5, 4.5]})
    assert same.callable and not same.rejects and "no difference is shown" in same.summary()
    flat = stats.compare("x", {"a": [2, 2, 2, 2], "b": [2, 2, 2, 2]})
    assert flat.p == 1.0 and "no difference" in flat.summary()
    lone = stats.compare("x", {"a": [1, 2, 3], "b": [5]})
    assert not lone.tested and "b (n=1)" in lone.summary()


# ------------------------------------------------------------------------------------------------ effect size
def test_bootstrap_interval_contains_the_true_ratio():
    rng = np.random.default_rng(11)
    a = rng.lognormal(np.log(20.0), 0.2, 15)
    b = rng.lognormal(np.log(30.0), 0.2, 15)
    ratio, (lo, hi) = stats.ratio_of_medians(a, b)
    assert ratio == pytest.approx(np.median(b) / np.median(a))
    assert lo < 1.5 < hi and lo < ratio < hi
    assert stats.ratio_of_medians(a, b) == (ratio, (lo, hi))  # seeded
    # scipy's own bootstrap, same seed, same interval
    res = sp.bootstrap((a, b), lambda x, y, axis: np.median(y, axis=axis) / np.median(x, axis=axis),
                       vectorized=True, paired=False, n_resamples=stats.BOOTSTRAP, method="percentile",
                       rng=np.random.default_rng(stats.SEED))
    assert (lo, hi) == pytest.approx((res.confidence_interval.low, res.confidence_interval.high))


def test_no_ratio_for_values_that_are_not_positive():
    assert stats.ratio_of_medians([0.0, 1.0], [1.0, 2.0]) == (None, None)


# ------------------------------------------------------------------------------------------------ runs needed
def test_min_runs_per_group_from_the_exact_distribution():
    # two groups: 2 / C(2n, n) < 0.05 first at n = 4 (0.0286; n = 3 gives 0.1)
    assert stats.min_runs_per_group(2) == 4
    assert sp.mannwhitneyu([1, 2, 3], [4, 5, 6], method="exact").pvalue >= 0.05
    assert sp.mannwhitneyu([1, 2, 3, 4], [5, 6, 7, 8], method="exact").pvalue < 0.05
    # three groups, Holm over 3 pairs: 3 × 2 / C(2n, n) < 0.05 first at n = 5 (3 × 2/252 = 0.024)
    assert stats.min_runs_per_group(3) == 5
    # four groups, 6 pairs: 6 × 2/252 = 0.048 < 0.05 at n = 5
    assert stats.min_runs_per_group(4) == 5
    # stricter α needs more: two groups at 0.01: 2/252 = 0.0079 at n = 5
    assert stats.min_runs_per_group(2, alpha=0.01) == 5
    assert stats.min_runs_per_group(1) == 1
    with pytest.raises(ValueError):
        stats.min_runs_per_group(2, alpha=0)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_at_the_needed_size_fully_separated_groups_are_called_and_one_fewer_are_not(k):
    n = stats.min_runs_per_group(k)
    apart = {f"g{i}": [100.0 * i + j for j in range(n)] for i in range(k)}
    assert any(p.real for p in stats.compare("x", apart).pairs)
    fewer = {g: v[:-1] for g, v in apart.items()}
    cmp = stats.compare("x", fewer)
    assert not cmp.callable and not any(p.real for p in cmp.pairs) and cmp.needed == n


def test_no_interval_from_a_handful_of_runs():
    ratio, ci = stats.ratio_of_medians([10.0, 11.0, 12.0], [20.0, 21.0, 22.0])
    assert ratio == pytest.approx(21 / 11) and ci is None
    cmp = stats.compare("x", {"a": [10.0, 11.0, 12.0], "b": [20.0, 21.0, 22.0]})
    assert f"no interval under {stats.BOOTSTRAP_MIN} runs a group" in cmp.summary()
