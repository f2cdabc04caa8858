"""The statistics behind the report's words and the sweep's default seed count (both features use it, so it
sits below them, in core): mean ± std over repeats, tests between platforms that are valid at the few runs a
benchmark has, effect sizes with a bootstrap interval, and the pareto frontier.

The unit of observation is the run: one figure per run (its median request latency, its upload s/MiB,
its train seconds). Requests of one run share a machine, a network path and a warm-up, so they are not
independent observations of a platform; pooling them makes small differences look certain.

Tests (every p-value exact or a seeded permutation estimate, so the same runs give the same report):
- two groups: two-sided Mann–Whitney from its permutation distribution over the joint mid-ranks
  (`scipy.stats.permutation_test`, every relabelling enumerated when there are at most EXACT_LIMIT of
  them; equal to `mannwhitneyu(method='exact')` without ties, and exact with ties too);
- more groups: a permutation Kruskal–Wallis omnibus, then pairwise Mann–Whitney as above with Holm's
  step-down adjustment over all pairs. A pair is called different only when the omnibus rejects at α
  and its Holm-adjusted p < α.
- effect size: ratio of medians (higher / lower) with a seeded percentile-bootstrap 95% interval
  (from BOOTSTRAP_MIN runs a group: resampling 2 or 3 values gives an interval too narrow to trust).

With few runs no outcome at all can reach α: two groups of 3 fully separated give p = 0.1 at best.
The report says so, with the runs per group that would be needed (min_runs_per_group).
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

MIN_PER_GROUP = 2
SEED = 20240610          # every permutation and bootstrap draw starts here: same runs, same report
EXACT_LIMIT = 200_000    # enumerate every relabelling up to this many; above, RESAMPLES seeded ones
RESAMPLES = 9_999
BOOTSTRAP = 9_999
BOOTSTRAP_MIN = 4        # fewer runs per group: resamples of 2–3 values give an interval far too narrow to trust
CONFIDENCE = 0.95


# ------------------------------------------------------------------------------------------------ basics
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


def fmt_p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def p_text(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------------------------ tests
def _relabellings(sizes: Sequence[int]) -> int:
    """How many ways the pooled values can be dealt into groups of these sizes (the multinomial)."""
    out = math.factorial(sum(sizes))
    for n in sizes:
        out //= math.factorial(n)
    return out


def _resamples(sizes: Sequence[int]) -> float:
    # permutation_test enumerates every relabelling when n_resamples is at least their number
    return np.inf if _relabellings(sizes) <= EXACT_LIMIT else RESAMPLES


def is_exact(sizes: Sequence[int]) -> bool:
    return _relabellings(sizes) <= EXACT_LIMIT


def mann_whitney(a: Sequence[float], b: Sequence[float], seed: int = SEED) -> float:
    """Two-sided Mann–Whitney p from the permutation distribution of a's rank sum (joint mid-ranks):
    exact when the relabellings are few enough to enumerate, else a seeded Monte Carlo estimate."""
    from scipy import stats

    ranks = stats.rankdata(np.concatenate([np.asarray(a, float), np.asarray(b, float)]))
    ra, rb = ranks[:len(a)], ranks[len(a):]
    if np.all(ranks == ranks[0]):
        return 1.0  # every value equal: nothing to order
    res = stats.permutation_test((ra, rb), lambda x, y, axis: np.sum(x, axis=axis), permutation_type="independent",
                                 alternative="two-sided", n_resamples=_resamples([len(a), len(b)]), vectorized=True,
                                 rng=_rng(seed))
    return float(min(1.0, res.pvalue))


def kruskal_permutation(groups: Sequence[Sequence[float]], seed: int = SEED) -> tuple[float, float]:
    """(H, p): scipy's tie-corrected H, with p from its permutation distribution instead of the χ²
    approximation (which calls two fully separated groups of 3 different at p = 0.0495; exact: 0.1)."""
    from scipy import stats

    sizes = [len(g) for g in groups]
    pooled = np.concatenate([np.asarray(g, float) for g in groups])
    if np.all(pooled == pooled[0]):
        return 0.0, 1.0  # scipy refuses constant data; there is no difference to find
    h = float(stats.kruskal(*groups).statistic)
    ranks = stats.rankdata(pooled)
    split = np.split(ranks, np.cumsum(sizes)[:-1])

    def stat(*samples, axis):
        # Σ R_i² / n_i: H up to constants fixed under relabelling (the tie correction included)
        return sum(np.sum(s, axis=axis) ** 2 / s.shape[axis] for s in samples)

    res = stats.permutation_test(split, stat, permutation_type="independent", alternative="greater",
                                 n_resamples=_resamples(sizes), vectorized=True, rng=_rng(seed))
    return h, float(min(1.0, res.pvalue))


def ratio_of_medians(a: Sequence[float], b: Sequence[float], seed: int = SEED,
                     confidence: float = CONFIDENCE) -> tuple[Optional[float], Optional[tuple[float, float]]]:
    """median(b) / median(a) and its percentile-bootstrap interval (groups resampled independently,
    seeded). None where a ratio means nothing (a value ≤ 0); no interval below BOOTSTRAP_MIN runs a group."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a) or not len(b) or np.any(a <= 0) or np.any(b <= 0):
        return None, None
    ratio = float(np.median(b) / np.median(a))
    if len(a) < BOOTSTRAP_MIN or len(b) < BOOTSTRAP_MIN:
        return ratio, None
    if np.all(a == a[0]) and np.all(b == b[0]):
        return ratio, (ratio, ratio)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny group has few distinct resamples: the interval says it
        res = stats.bootstrap((a, b), lambda x, y, axis: np.median(y, axis=axis) / np.median(x, axis=axis),
                              vectorized=True, paired=False, confidence_level=confidence, n_resamples=BOOTSTRAP,
                              method="percentile", rng=_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return ratio, (None if not (math.isfinite(lo) and math.isfinite(hi)) else (lo, hi))


# ------------------------------------------------------------------------------------------------ power floor
@lru_cache(maxsize=None)
def smallest_p_pair(n_a: int, n_b: int) -> float:
    """The smallest two-sided Mann–Whitney p two groups of these sizes can give (fully separated, no
    ties), read off scipy's exact distribution; a Monte Carlo estimate cannot go below 2/(R+1)."""
    from scipy import stats

    p = float(stats.mannwhitneyu(np.arange(n_a), np.arange(n_a, n_a + n_b), method="exact").pvalue)
    return p if is_exact([n_a, n_b]) else max(p, 2.0 / (RESAMPLES + 1))


@lru_cache(maxsize=None)
def smallest_p_omnibus(sizes: tuple[int, ...]) -> float:
    """The smallest permutation Kruskal–Wallis p for these group sizes: only fully separated groups
    (contiguous blocks of ranks) reach the largest H, so p = (block orders with that H) / relabellings."""
    k = len(sizes)
    if k > 8:  # 9! block orders: the bound is already far below any α used here
        return max(math.factorial(k) / _relabellings(sizes), 1.0 / (RESAMPLES + 1))
    values = []
    for order in itertools.permutations(range(k)):
        start, stat = 1, 0.0
        for i in order:
            ranks_sum = sizes[i] * (2 * start + sizes[i] - 1) / 2
            stat += ranks_sum ** 2 / sizes[i]
            start += sizes[i]
        values.append(stat)
    top = max(values)
    p = sum(1 for v in values if v >= top * (1 - 1e-12)) / _relabellings(sizes)
    return p if _relabellings(sizes) <= EXACT_LIMIT else max(p, 1.0 / (RESAMPLES + 1))


def can_call(sizes: Sequence[int], alpha: float = 0.05) -> bool:
    """Whether any outcome at all lets these group sizes call a difference: the omnibus (more than two
    groups) can reject, and the most separated pair passes Holm's first step (p × pairs < α)."""
    sizes = [int(n) for n in sizes]
    k = len(sizes)
    if k < 2 or min(sizes) < 1:
        return False
    pairs = k * (k - 1) // 2
    best_pair = min(smallest_p_pair(a, b) for a, b in itertools.combinations(sizes, 2))
    if k > 2 and smallest_p_omnibus(tuple(sorted(sizes))) >= alpha:
        return False
    return best_pair * pairs < alpha


def min_runs_per_group(groups: int, alpha: float = 0.05) -> int:
    """The fewest runs per group (equal groups) at which this report's tests can call a difference at
    all, at `alpha`, with Holm over all pairs of `groups` groups: 4 for two groups at 0.05, 5 for three.
    With fewer than two groups there is nothing to compare, so one run each is enough for that."""
    if groups < 2:
        return 1
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    n = MIN_PER_GROUP
    while not can_call([n] * groups, alpha):
        n += 1
    return n


# ------------------------------------------------------------------------------------------------ comparisons
@dataclass
class Pair:
    a: str
    b: str
    n_a: int
    n_b: int
    p: float            # two-sided Mann–Whitney, unadjusted
    p_holm: float
    real: bool
    median_a: float
    median_b: float
    ratio: Optional[float] = None                     # median(hi) / median(lo): ≥ 1
    ci: Optional[tuple[float, float]] = None          # its bootstrap 95% interval

    @property
    def hi(self) -> str:
        return self.a if self.median_a > self.median_b else self.b

    @property
    def lo(self) -> str:
        return self.b if self.hi == self.a else self.a

    def effect(self) -> str:
        if self.ratio is None:
            return f"medians {self.a} {self.median_a:.4g}, {self.b} {self.median_b:.4g}"
        ci = (f", {int(CONFIDENCE * 100)}% CI {self.ci[0]:.3g}–{self.ci[1]:.3g}" if self.ci is not None else
              f", no interval under {BOOTSTRAP_MIN} runs a group" if min(self.n_a, self.n_b) < BOOTSTRAP_MIN else "")
        return f"median {self.hi}/{self.lo} ×{self.ratio:.3g}{ci}"

    def verdict(self) -> str:
        if not self.real:
            return f"{self.a} vs {self.b}: not shown to differ"
        return f"{self.hi} higher than {self.lo}"


@dataclass
class Comparison:
    """Between groups, one value per run: see the module docstring for the tests."""

    what: str
    groups: dict[str, list[float]]
    left_out: dict[str, int] = field(default_factory=dict)  # group → n, too few runs to enter the test
    alpha: float = 0.05
    h: Optional[float] = None        # Kruskal–Wallis H (more than two groups)
    p: Optional[float] = None        # the omnibus p (two groups: the one pair's p)
    pairs: list[Pair] = field(default_factory=list)
    callable: bool = False           # can any outcome at these sizes reach α?
    needed: Optional[int] = None     # runs per group needed for that (min_runs_per_group)
    note: str = ""

    @property
    def tested(self) -> bool:
        return self.p is not None

    @property
    def rejects(self) -> bool:
        return self.p is not None and self.p < self.alpha

    @property
    def sizes(self) -> str:
        return ", ".join(f"{g} n={len(v)}" for g, v in self.groups.items())

    @property
    def test_name(self) -> str:
        if not self.tested:
            return "–"
        sizes = [len(v) for v in self.groups.values()]
        if len(sizes) == 2:
            return "exact Mann–Whitney" if is_exact(sizes) else f"Mann–Whitney ({RESAMPLES:,} seeded permutations)"
        omni = ("exact permutation Kruskal–Wallis" if is_exact(sizes)
                else f"permutation Kruskal–Wallis ({RESAMPLES:,} seeded)")
        return f"{omni}, then pairwise Mann–Whitney with Holm"

    def too_few(self) -> str:
        m = len(self.groups) * (len(self.groups) - 1) // 2
        holm_text = "" if m == 1 else f", Holm over {m} pairs"
        return (f"too few runs to call any difference ({self.sizes}): even fully separated groups could not "
                f"reach α = {self.alpha}{holm_text}; {self.needed} runs per group are needed")

    def _left_text(self) -> str:
        if not self.left_out:
            return ""
        return (f" Left out (fewer than {MIN_PER_GROUP} runs): "
                + ", ".join(f"{g} (n={n})" for g, n in self.left_out.items()) + ".")

    def summary(self) -> str:
        left = self._left_text()
        if not self.tested:
            return f"{self.what}: not tested — {self.note}.{left}"
        effects = "; ".join(pr.effect() for pr in self.pairs)
        if not self.callable:
            return f"{self.what}: {self.too_few()}. Observed: {effects}.{left}"
        if len(self.groups) == 2:
            (pr,) = self.pairs
            head = f"{self.what}: {self.test_name}, one value per run ({self.sizes}), {p_text(pr.p)}."
            if not pr.real:
                return head + f" p ≥ α = {self.alpha}: no difference is shown ({pr.effect()}).{left}"
            return head + f" {pr.verdict()} ({pr.effect()}).{left}"
        head = (f"{self.what}: {self.test_name}, one value per run ({self.sizes}), H = {self.h:.3f}, "
                f"{p_text(self.p)}.")
        if not self.rejects:
            return head + f" p ≥ α = {self.alpha}: no difference between these groups is shown.{left}"
        real = [pr for pr in self.pairs if pr.real]
        if not real:
            return head + (f" p < α = {self.alpha}, but no pair differs after Holm's adjustment, so no "
                           f"particular difference is called.{left}")
        return head + " Differences (Holm-adjusted p < α): " + "; ".join(
            f"{pr.verdict()} ({p_text(pr.p_holm)}, {pr.effect()})" for pr in real) + "." + left

    def finding(self) -> str:
        """The verdict alone, for a table cell."""
        if not self.tested:
            return f"not tested: {self.note}"
        if not self.callable:
            return f"too few runs to call any difference; {self.needed} per group needed"
        real = [pr for pr in self.pairs if pr.real]
        if not self.rejects or (len(self.groups) > 2 and not real):
            return "no difference shown" + (f" ({self.pairs[0].effect()})" if len(self.pairs) == 1 else "")
        return "; ".join(f"{pr.verdict()} (Holm {p_text(pr.p_holm)}, {pr.effect()})" for pr in real)


def compare(what: str, groups: dict[str, Sequence[float]], alpha: float = 0.05, seed: int = SEED) -> Comparison:
    """Compare groups of per-run values. Groups with fewer than MIN_PER_GROUP runs are left out, named."""
    kept = {g: [float(x) for x in v] for g, v in groups.items() if len(v) >= MIN_PER_GROUP}
    left = {g: len(v) for g, v in groups.items() if len(v) < MIN_PER_GROUP}
    cmp = Comparison(what, kept, left, alpha=alpha)
    if len(kept) < 2:
        cmp.note = ("one group has enough runs, nothing to compare it with" if len(kept) == 1 else
                    f"no group has {MIN_PER_GROUP} or more runs")
        return cmp
    sizes = [len(v) for v in kept.values()]
    cmp.callable = can_call(sizes, alpha)
    cmp.needed = None if cmp.callable else min_runs_per_group(len(kept), alpha)
    names = list(kept)
    raw = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            raw.append((a, b, mann_whitney(kept[a], kept[b], seed)))
    adjusted = holm([p for _, _, p in raw])
    if len(kept) == 2:
        cmp.p = raw[0][2]
        gate = True
    else:
        cmp.h, cmp.p = kruskal_permutation(list(kept.values()), seed)
        gate = cmp.p < alpha
    for (a, b, p), ph in zip(raw, adjusted):
        lo, hi = (b, a) if np.median(kept[a]) > np.median(kept[b]) else (a, b)
        ratio, ci = ratio_of_medians(kept[lo], kept[hi], seed)
        cmp.pairs.append(Pair(a, b, len(kept[a]), len(kept[b]), p, ph, bool(gate and ph < alpha),
                              float(np.median(kept[a])), float(np.median(kept[b])), ratio, ci))
    return cmp


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (x, y) with both to be maximised: True when no other point is at least as good in both
    and strictly better in one."""
    out = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        out.append(not dominated)
    return out
