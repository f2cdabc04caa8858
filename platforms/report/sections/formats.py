"""How figures are written in the tables and paragraphs: number formats, short hashes, provenance."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from platforms.core.stats import pm
from platforms.report.data import Run

# number formats: one per kind of figure, the same in every table of both renderings
ACC, SEC, IPS, SPM, MS, USD, PRICE = "{:.4f}", "{:.2f}", "{:.1f}", "{:.4f}", "{:.2f}", "{:.4f}", "{:.4f}"


def short(value: Optional[str], n: int = 12) -> str:
    if not value:
        return "–"
    return value if len(value) <= n else value[:n]


def short_commit(value: Optional[str]) -> str:
    """12 hex digits, keeping the "-dirty" mark (uncommitted changes) that tracking.code_commit adds."""
    if not value:
        return "–"
    head, dirty = (value[:-6], "-dirty") if value.endswith("-dirty") else (value, "")
    return head[:12] + dirty


def fmt(value: Optional[float], f: str) -> str:
    return "–" if value is None else f.format(value)


def pc_text(n: Optional[int]) -> str:
    return "all" if n is None else str(n)


def provenance_text(runs: Sequence[Run]) -> str:
    """The dataset fingerprints, image digests and code commits behind a figure or table."""
    def distinct(get: Callable[[Run], Optional[str]], none: str) -> str:
        values = sorted({get(r) or "" for r in runs})
        return ", ".join(f"`{short(v)}`" if v else none for v in values)

    return (f"dataset fingerprint {distinct(lambda r: r.fingerprint, 'none recorded')}; "
            f"image digest {distinct(lambda r: r.image_digest, 'none (not run from an image)')}; "
            "code commit " + ", ".join(f"`{short_commit(v)}`" if v else "none recorded"
                                       for v in sorted({r.commit or "" for r in runs})))


def to_target_text(runs: Sequence[Run]) -> str:
    """Train seconds to the target accuracy over the runs that had one: mean ± std of those that reached
    it, and how many did; "not reached" when none did, – when no run had a target."""
    targeted = [r for r in runs if r.target_accuracy is not None]
    reached = [r.m("seconds_to_target") for r in targeted if r.m("seconds_to_target") is not None]
    if not targeted:
        return "–"
    return f"{pm(reached, SEC)} ({len(reached)}/{len(targeted)} reached)" if reached else f"not reached (0/{len(targeted)})"


def seeds_text(runs: Sequence[Run]) -> str:
    """Distinct seeds: two runs of seed 0 (a rerun) are one seed, not two."""
    return str(len({r.seed for r in runs}))
