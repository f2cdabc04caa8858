"""The report's plots, drawn with matplotlib (Agg) into SVG text: no browser library, no CDN, nothing
fetched when the page is opened. Every function takes plain numbers already chosen by sections/ and
returns SVG; the same platform keeps the same colour in every figure."""
from __future__ import annotations

import io
from typing import Optional, Sequence

import numpy as np

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "platbench", "font.size": 10,
                         "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
                         "grid.alpha": 0.3, "figure.dpi": 100})
    return plt


class Style:
    """Stable colours per platform and markers per model across every figure of one report."""

    def __init__(self, platforms: Sequence[str], models: Sequence[str]):
        self.colors = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(platforms)}
        self.markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(models)}

    def color(self, platform: str) -> str:
        return self.colors.get(platform, "#333333")

    def marker(self, model: str) -> str:
        return self.markers.get(model, "o")


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _plt().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG is embedded


def plain_log(axis) -> None:
    """A log axis labelled in plain numbers ("30", "500", "2,000", "0.2"): every power of ten, and between them
    2 and 5 × one over up to two decades, every tick under about half a decade. matplotlib's default labels
    the minor ticks of a short range in scientific notation, which run into each other ("3×10⁰4×10⁰6×10⁰")."""
    import math

    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos=None) -> str:
        if x <= 0:
            return ""
        lo, hi = sorted(axis.get_view_interval())
        decades = math.log10(hi / lo) if lo > 0 else math.inf
        mantissa = round(x / 10 ** math.floor(math.log10(x) + 1e-9), 6)
        if mantissa != 1 and not (decades <= 0.6 or (decades <= 2 and mantissa in (2, 5))):
            return ""
        return f"{x:,.0f}" if x >= 1 and float(x).is_integer() else f"{x:,.3g}"

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def time_vs_accuracy(points: list[dict], style: Style) -> str:
    """points: {platform, model, train_s, wall_s, accuracy}; two panels, log time axes."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "train_s", "training seconds (trainer, log scale)"),
                           (axes[1], "wall_s", "end-to-end seconds: launch → results in MLflow (log scale)")):
        seen = set()
        for p in points:
            if p.get(key) is None or p[key] <= 0:
                continue
            tag = (p["platform"], p["model"])
            ax.scatter(p[key], p["accuracy"], color=style.color(p["platform"]), marker=style.marker(p["model"]),
                       s=36, alpha=0.8, edgecolors="white", linewidths=0.5,
                       label=f"{p['platform']} · {p['model']}" if tag not in seen else None)
            seen.add(tag)
        ax.set_xscale("log")
        plain_log(ax.xaxis)
        ax.set_xlabel(label)
    axes[0].set_ylabel("test accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), frameon=False,
                   bbox_to_anchor=(0.5, 1.08))
    return _svg(fig)


def ablation(series: list[dict], style: Style) -> str:
    """series: {platform, model, x: [per_class], mean: [...], std: [... or None], seeds: [(x, acc), …]}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s in series:
        color = style.color(s["platform"])
        x, mean = np.asarray(s["x"], float), np.asarray(s["mean"], float)
        std = np.asarray([v if v is not None else np.nan for v in s["std"]], float)
        cond = f" · {s['condition']}" if s.get("condition") else ""  # two lines of one platform and model
        ax.plot(x, mean, marker=style.marker(s["model"]), color=color, label=f"{s['platform']} · {s['model']}{cond}")
        has = ~np.isnan(std)
        if has.any():
            ax.fill_between(x[has], (mean - std)[has], (mean + std)[has], color=color, alpha=0.18, linewidth=0)
            ax.errorbar(x[has], mean[has], yerr=std[has], fmt="none", ecolor=color, capsize=3, alpha=0.8)
        if s["seeds"]:
            sx, sy = zip(*s["seeds"])
            ax.scatter(sx, sy, color=color, s=10, alpha=0.45, marker=style.marker(s["model"]))
    return _counts_axis(ax, series, "training images per class (log scale)", "test accuracy (mean, band ± std over seeds)")


def _counts_axis(ax, series: list[dict], xlabel: str, ylabel: str) -> str:
    """A log-2 x axis ticked at exactly the counts the series ran at (images per class, devices), labels,
    legend: the SVG."""
    xs = sorted({x for s in series for x in s["x"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(int(x)) for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=9)
    return _svg(ax.figure)


def scaling(series: list[dict], style: Style) -> str:
    """series: {platform, model, per_class, x: [device counts], median: [images/s per device], runs: [(x, v), …]}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s in series:
        color, marker = style.color(s["platform"]), style.marker(s["model"])
        pc = "all" if s["per_class"] is None else s["per_class"]
        ax.plot(s["x"], s["median"], marker=marker, color=color, label=f"{s['platform']} · {s['model']} · {pc}/cls")
        if s["runs"]:
            rx, ry = zip(*s["runs"])
            ax.scatter(rx, ry, color=color, s=10, alpha=0.45, marker=marker)
    ax.set_ylim(bottom=0)
    return _counts_axis(ax, series, "devices (data-parallel processes, log scale)",
                        "training images/s per device (median over runs)")


def pareto(points: list[dict], style: Style) -> str:
    """points: {platform, model, per_class, throughput, accuracy, frontier: bool}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for p in points:
        ax.scatter(p["throughput"], p["accuracy"], color=style.color(p["platform"]), marker=style.marker(p["model"]),
                   s=70 if p["frontier"] else 30, alpha=0.9 if p["frontier"] else 0.5,
                   edgecolors="black" if p["frontier"] else "white", linewidths=1.0 if p["frontier"] else 0.5)
    front = sorted((p for p in points if p["frontier"]), key=lambda p: p["throughput"])
    if front:
        xs = [p["throughput"] for p in front]
        ys = [p["accuracy"] for p in front]
        ax.step(xs, ys, where="pre", color="black", linewidth=1, alpha=0.6)
        for p in front:
            pc = "all" if p["per_class"] is None else p["per_class"]
            ax.annotate(f"{p['platform']}·{p['model']}·{pc}/cls", (p["throughput"], p["accuracy"]),
                        textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    plain_log(ax.xaxis)
    ax.set_xlabel("inference throughput as evaluated (with TTA), images/s (trainer's test-set pass, log scale)")
    ax.set_ylabel("test accuracy")
    _legend(ax, points, style, extra=["pareto frontier"] if front else [])
    return _svg(fig)


def _legend(ax, points: list[dict], style: Style, extra: list[str] = ()) -> None:
    """One entry per platform · model in the figure's own marker and colour (not a point's size)."""
    from matplotlib.lines import Line2D

    handles, seen = [], set()
    for p in points:
        tag = (p["platform"], p["model"])
        if tag in seen:
            continue
        seen.add(tag)
        handles.append(Line2D([], [], linestyle="none", marker=style.marker(p["model"]), color=style.color(p["platform"]),
                              markersize=7, label=f"{p['platform']} · {p['model']}"))
    for label in extra:
        handles.append(Line2D([], [], color="black", alpha=0.6, linewidth=1, label=label))
    ax.legend(handles=handles, frameon=False, fontsize=9)


def phases(platforms: list[str], names: list[str], means: dict[str, dict[str, float]]) -> str:
    """Horizontal stacked bars: mean seconds per phase per platform."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(platforms) + 1.6))
    colors = plt.get_cmap("tab10")
    left = np.zeros(len(platforms))
    for i, name in enumerate(names):
        widths = np.asarray([means[p].get(name, 0.0) for p in platforms])
        if not widths.any():
            continue
        ax.barh(platforms, widths, left=left, color=colors(i % 10), label=name, edgecolor="white")
        left += widths
    ax.invert_yaxis()
    ax.set_xlabel("seconds (mean over the platform's finished runs)")
    ax.legend(frameon=False, ncol=min(4, len(names)), loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize=9)
    return _svg(fig)


def boxes(panels: list[tuple[str, dict[str, list[float]]]], style: Style, log: bool = False) -> str:
    """One box plot panel per (ylabel, platform → values); points drawn over the boxes when few."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (label, groups) in zip(axes[0], panels):
        names = list(groups)
        data = [groups[n] for n in names]
        bp = ax.boxplot(data, patch_artist=True, showfliers=True, widths=0.5,
                        flierprops={"markersize": 2, "alpha": 0.4})
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names)
        for patch, n in zip(bp["boxes"], names):
            patch.set_facecolor(style.color(n))
            patch.set_alpha(0.45)
        for i, values in enumerate(data, 1):
            if len(values) <= 50:
                jitter = np.linspace(-0.08, 0.08, len(values)) if len(values) > 1 else [0.0]
                ax.scatter(np.asarray(jitter) + i, values, s=10, color=style.color(names[i - 1]), zorder=3)
        if log:
            ax.set_yscale("log")
            plain_log(ax.yaxis)
        ax.set_ylabel(label)
    return _svg(fig)


def cost_bars(groups: list[tuple[str, Optional[tuple[float, Optional[float]]], Optional[tuple[float, Optional[float]]]]]) -> str:
    """groups: (label, billed (mean, std), list-price estimate (mean, std)) → grouped bars with std error bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) + 2), 4))
    x = np.arange(len(groups))
    for offset, idx, label, color in ((-0.2, 1, "billed", "#1f77b4"), (0.2, 2, "list-price estimate", "#ff7f0e")):
        means = [g[idx][0] if g[idx] else 0.0 for g in groups]
        errs = [(g[idx][1] or 0.0) if g[idx] else 0.0 for g in groups]
        ax.bar(x + offset, means, 0.4, yerr=errs, capsize=3, color=color, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([g[0] for g in groups], rotation=20, ha="right")
    ax.set_ylabel("USD per training run (mean ± std)")
    ax.legend(frameon=False)
    return _svg(fig)
