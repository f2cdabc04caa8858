"""The statistics behind the report's words: mean ± std over repeats, the Kruskal–Wallis test across
platforms with Dunn's post-hoc test (Holm-adjusted), and the accuracy × throughput pareto frontier.

A difference between two platforms is called real only when Kruskal–Wallis rejects "all the same"
at α AND Dunn's pairwise test, Holm-adjusted over all pairs, rejects "these two the same" at α.
Dunn's test is the usual post-hoc for Kruskal–Wallis: it compares mean ranks from the same joint
ranking the omnibus test used (with the tie correction), unlike separate pairwise Mann–Whitney tests
that each re-rank two groups. Implemented here with scipy.stats (rankdata, norm), as scipy has no
Dunn's test of its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

MIN_PER_GROUP = 2


def mean_std(values: Sequence[float]) -> tuple[float, Optional[float]]:
    """Mean and sample standard deviation (ddof=1); std is None for a single value."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else None)


def pm(values: Sequence[float], fmt: str = "{:.4f}") -> str:
    """"mean ± std" over repeats; a lone value is shown as itself (no spread to show)."""
    if not len(values):
        return "–"
    mean, std = mean_std(values)
    return fmt.format(mean) if std is None else f"{fmt.format(mean)} ± {fmt.format(std)}"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values (monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class Pair:
    a: str
    b: str
    z: float
    p: float            # two-sided, unadjusted
    p_holm: float
    real: bool
    median_a: float
    median_b: float

    def verdict(self, unit: str = "") -> str:
        if not self.real:
            return "not shown to differ"
        hi, lo = (self.a, self.b) if self.median_a > self.median_b else (self.b, self.a)
        return f"{hi} higher than {lo}"


@dataclass
class Comparison:
    """Kruskal–Wallis across groups, then Dunn–Holm pairs when it rejects."""

    what: str
    groups: dict[str, list[float]]
    left_out: dict[str, int] = field(default_factory=dict)  # group → n, too few observations
    h: Optional[float] = None
    p: Optional[float] = None
    alpha: float = 0.05
    pairs: list[Pair] = field(default_factory=list)
    note: str = ""

    @property
    def tested(self) -> bool:
        return self.p is not None

    @property
    def rejects(self) -> bool:
        return self.p is not None and self.p < self.alpha

    def summary(self) -> str:
        left = ""
        if self.left_out:
            left = (" Left out (fewer than %d observations): " % MIN_PER_GROUP
                    + ", ".join(f"{g} (n={n})" for g, n in self.left_out.items()) + ".")
        if not self.tested:
            return f"{self.what}: not tested — {self.note}.{left}"
        sizes = ", ".join(f"{g} n={len(v)}" for g, v in self.groups.items())
        head = f"{self.what}: Kruskal–Wallis H = {self.h:.3f}, {p_text(self.p)} ({sizes})."
        if not self.rejects:
            return head + f" p ≥ α = {self.alpha}: no difference between these platforms is shown.{left}"
        real = [pr for pr in self.pairs if pr.real]
        if not real:
            return head + (f" p < α = {self.alpha}, but no pair differs after Dunn's test with Holm's adjustment, "
                           f"so no particular difference is called.{left}")
        return head + " Real differences (Dunn, Holm-adjusted p < α): " + "; ".join(
            f"{pr.verdict()} ({p_text(pr.p_holm)})" for pr in real) + "." + left

    def finding(self) -> str:
        """The verdict alone, for a table cell."""
        if not self.tested:
            return f"not tested: {self.note}"
        if not self.rejects:
            return "no difference shown"
        real = [pr for pr in self.pairs if pr.real]
        if not real:
            return "no pair differs after Dunn–Holm"
        return "; ".join(f"{pr.verdict()} (Dunn–Holm {p_text(pr.p_holm)})" for pr in real)


def fmt_p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def p_text(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def compare(what: str, groups: dict[str, Sequence[float]], alpha: float = 0.05) -> Comparison:
    from scipy import stats

    kept = {g: [float(x) for x in v] for g, v in groups.items() if len(v) >= MIN_PER_GROUP}
    left = {g: len(v) for g, v in groups.items() if len(v) < MIN_PER_GROUP}
    cmp = Comparison(what, kept, left, alpha=alpha)
    if len(kept) < 2:
        cmp.note = ("one platform has enough observations, nothing to compare it with" if len(kept) == 1 else
                    f"no platform has {MIN_PER_GROUP} or more observations")
        return cmp
    values = np.concatenate([np.asarray(v) for v in kept.values()])
    if np.all(values == values[0]):
        cmp.h, cmp.p = 0.0, 1.0  # every observation equal: scipy refuses; there is no difference to find
        return cmp
    h, p = stats.kruskal(*kept.values())
    cmp.h, cmp.p = float(h), float(p)
    if cmp.rejects:
        cmp.pairs = dunn(kept, alpha)
    return cmp


def dunn(groups: dict[str, list[float]], alpha: float = 0.05) -> list[Pair]:
    """Dunn's (1964) pairwise z tests on the joint mid-ranks, tie-corrected, two-sided, Holm-adjusted."""
    from scipy import stats

    names = list(groups)
    values = np.concatenate([np.asarray(groups[g], dtype=float) for g in names])
    ranks = stats.rankdata(values)
    n_total = len(values)
    _, counts = np.unique(values, return_counts=True)
    ties = float(np.sum(counts ** 3 - counts))
    variance = n_total * (n_total + 1) / 12.0 - ties / (12.0 * (n_total - 1))
    mean_rank, size, start = {}, {}, 0
    for g in names:
        n = len(groups[g])
        mean_rank[g], size[g] = float(ranks[start:start + n].mean()), n
        start += n
    raw = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            se = math.sqrt(variance * (1.0 / size[a] + 1.0 / size[b]))
            z = (mean_rank[a] - mean_rank[b]) / se if se > 0 else 0.0
            raw.append((a, b, z, float(2 * stats.norm.sf(abs(z)))))
    adjusted = holm([r[3] for r in raw])
    return [Pair(a, b, z, p, ph, ph < alpha, float(np.median(groups[a])), float(np.median(groups[b])))
            for (a, b, z, p), ph in zip(raw, adjusted)]


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (x, y) with both to be maximised: True when no other point is at least as good in both
    and strictly better in one."""
    out = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        out.append(not dominated)
    return out
