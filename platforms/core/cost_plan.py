"""A cost plan: what a launch (or each sweep cell) is expected to cost before anything is created, and the
upper bound a `--max-usd` budget is held against.

    expected USD = the job's quote (USD/h of the whole job: every priced item × its count, instances included;
                   platforms/core/pricing.py) × expected hours
    upper bound  = the quote × max_run hours (the platform stops the job there)

Expected hours come from the newest finished run of the same platform, model and instance type in the
MLflow store (its seconds_wall: staging and queue included, so the estimate errs high), else from max_run;
the plan says which. A platform that runs on this machine costs nothing; a cloud job with no price has an
unknown cost, and a budget cannot be held for it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from platforms.errors import UserError

NO_COST = "runs on this machine: nothing billed"


@dataclass
class CostLine:
    platform: str
    label: str                     # what is priced: the instance (× count), or the sweep cell
    quote: Optional[object]        # pricing.Quote; None: no cost (this machine) or no price (see why)
    hours: Optional[float]         # expected hours
    hours_from: str                # "a finished run (ID, N s)" | "max_run (N s)"
    upper_hours: Optional[float]   # max_run in hours; None: unbounded
    why: str = ""                  # no quote: why
    seen_usd: Optional[float] = None  # an AutoML service: what its newest finished run cost (no quote × hours)
    upper_from: str = "max_run"       # what bounds the hours
    runs: int = 1                     # the runs it prices (a plan may merge like runs into one line)

    @property
    def free(self) -> bool:
        return self.why == NO_COST

    @property
    def expected_usd(self) -> Optional[float]:
        if self.free:
            return 0.0
        if self.seen_usd is not None:
            return self.seen_usd
        return None if self.quote is None or self.hours is None else self.quote.usd_per_hour * self.hours

    @property
    def upper_usd(self) -> Optional[float]:
        if self.free:
            return 0.0
        return None if self.quote is None or self.upper_hours is None else self.quote.usd_per_hour * self.upper_hours

    def text(self) -> str:
        if self.quote is None:
            return f"  {self.label}: " + (f"{self.seen_usd:.4f} USD expected ({self.why})" if self.seen_usd is not None
                                          else self.why)
        q = self.quote
        status = "verified" if q.verified else "unverified †"
        dates = sorted({p.date for p, _ in q.items})
        upper = f"; at most {self.upper_usd:.4f} USD in {self.upper_from} ({self.upper_hours:.2f} h)" if self.upper_usd is not None \
            else "; no upper bound (no max_run: --max-usd stops it at the budget)"
        expected = (f"{self.hours:.3f} h expected (from {self.hours_from}) = {self.expected_usd:.4f} USD"
                    if self.hours is not None else f"expected hours unknown ({self.hours_from}): cost unknown")
        return f"  {self.label}: {q.usd_per_hour:.4f} USD/h ({q.basis}; {status}, price of {', '.join(dates)}) × {expected}{upper}"


def newest_runs(filt: str, n: int = 20) -> list:
    """The `n` newest runs matching `filt`, read without creating a store where none exists."""
    from platforms.core import tracking

    if tracking._is_embedded() and not (Path.cwd() / tracking.DB_FILE).exists():
        return []
    c = tracking.client()
    exp = c.get_experiment_by_name(tracking.EXPERIMENT)
    if exp is None:
        return []
    return c.search_runs([exp.experiment_id], filter_string=filt, order_by=["attributes.start_time DESC"], max_results=n)


def _finished_seconds(platform: str, model: str, instance: str) -> Optional[tuple[str, float]]:
    """(run id, seconds_wall) of the newest finished run of this platform, model and instance type."""
    from platforms.core import tracking

    T = tracking.Tag
    filt = (f"tags.`{T.PLATFORM}` = '{platform}' and tags.`{T.MODEL}` = '{model}' and tags.`{T.STATUS}` = 'finished'"
            + (f" and tags.`{T.INSTANCE_TYPE}` = '{instance}'" if instance else ""))
    for r in newest_runs(filt):
        if r.data.metrics.get("seconds_wall"):
            return r.info.run_id, float(r.data.metrics["seconds_wall"])
    return None


def for_platform(platform, job, label: str = "") -> CostLine:
    """The cost line of `job` on a launcher made with its settings, once preflight() or check() has priced it."""
    from platforms.core import tracking

    name = platform.name
    if platform.spec.in_process:
        return CostLine(name, label or name, None, None, "", None, NO_COST)
    cfg = platform.parsed()
    max_run = getattr(cfg, "max_run", None)
    upper = max_run / 3600 if max_run and max_run != float("inf") else None
    quote = getattr(platform, "_quote", None)  # the cloud-job template's; a launcher without one is not priced
    instance = platform.run_tags(job).get(tracking.Tag.INSTANCE_TYPE, "") if quote is not None else ""
    label = label or f"{name} {instance or ''}".strip()
    from platforms.core.cloud_settings import LocalMode

    if isinstance(cfg, LocalMode) and any(getattr(cfg, key) for key in LocalMode.model_fields):  # its local mode
        return CostLine(name, label, None, None, "", None, NO_COST)
    if quote is None:
        return CostLine(name, label, None, None, "", upper,
                        f"no price for it in platforms/{name}/prices.yaml or the price cache: cost unknown")
    seen = _finished_seconds(name, job.model, instance)
    if seen is not None:
        hours, source = seen[1] / 3600, f"finished run {seen[0][:8]}, {seen[1]:.0f} s"
    elif upper is not None:
        hours, source = upper, f"max_run, {max_run:.0f} s: no finished run of {name}/{job.model}/{instance} yet"
    else:
        hours, source = None, "nothing: no finished run and no max_run"
    return CostLine(name, label, quote, hours, source, upper)


def line(platform_name: str, job, settings: dict[str, str], label: str = "") -> CostLine:
    """The cost line of `job` on `platform_name` with `settings` (its preflight prices it; nothing is created)."""
    from platforms.core import registry
    from platforms.core.api import Kind

    if registry.spec(platform_name).in_process:  # nothing to price: no launcher made, no preflight
        return CostLine(platform_name, label or platform_name, None, None, "", None, NO_COST)
    if registry.spec(platform_name).kind == Kind.SERVICE:
        return service_line(platform_name, label or platform_name)
    platform = registry.get(platform_name)(settings)
    platform.preflight(job)
    return for_platform(platform, job, label)


def render(lines: list[CostLine], max_usd: Optional[float] = None) -> str:
    """The plan as text: a line per run, then the totals (expected, upper bound) and the budget."""
    out = ["Cost plan (list prices × hours; † a price no official source confirmed: `platbench prices refresh`):"]
    out += [ln.text() for ln in lines]
    if len(lines) > 1 or max_usd is not None:
        exp = [ln.expected_usd for ln in lines]
        up = [ln.upper_usd for ln in lines]
        total = f"{sum(exp):.4f} USD" if None not in exp else "unknown (a run has no price or no expected hours)"
        watched = all(ln.quote is not None for ln in lines if ln.upper_usd is None)
        bound = f"{sum(up):.4f} USD" if None not in up else \
            f"{max_usd:g} USD (the budget: the watch stops a run without max_run)" if watched and max_usd is not None \
            else "unknown"
        runs = sum(ln.runs for ln in lines)
        out.append(f"  total for {runs} run{'s' if runs != 1 else ''}: {total} expected, at most {bound}"
                   + (f"; budget --max-usd {max_usd:g}" if max_usd is not None else ""))
    return "\n".join(out)


def hold(lines: list[CostLine], max_usd: Optional[float]) -> None:
    """Refuse, in one line, a plan whose upper bound exceeds the budget or cannot be known."""
    if max_usd is None:
        return
    # a priced job without max_run is held by the launcher's budget watch (CloudJobPlatform.over_budget cancels
    # it before its spend crosses the budget); one without a price cannot be watched
    unknown = [ln for ln in lines if ln.upper_usd is None and ln.quote is None]
    if unknown:
        ln = unknown[0]
        raise UserError(f"--max-usd {max_usd:g}: the cost of {ln.label} has no upper bound "
                        f"({ln.why or 'no max_run'}); nothing was created")
    upper = sum(ln.upper_usd for ln in lines if ln.upper_usd is not None)
    if upper > max_usd:
        raise UserError(f"--max-usd {max_usd:g}: the plan may cost up to {upper:.4f} USD ({len(lines)} run"
                        f"{'s' if len(lines) != 1 else ''} × price × max_run); lower max_run (--set max_run=SECONDS), "
                        "the cells or the instance, or raise the budget; nothing was created")


def _endpoint_seconds(platform: str) -> Optional[tuple[str, float, float, float]]:
    """(run id, seconds up outside the load test, load seconds, requests) of the newest finished endpoint run of
    `platform`: create → serving + teardown, and the load test's seconds and requests. Batch inference is not
    in it."""
    from platforms.core import tracking

    T = tracking.Tag
    filt = f"tags.`{T.PLATFORM}` = '{platform}' and tags.`{T.KIND}` = 'endpoint' and tags.`{T.STATUS}` = 'finished'"
    for r in newest_runs(filt):
        m = r.data.metrics
        requests = m.get("load_ok", 0) + m.get("load_failed", 0)
        if "endpoint_create_to_in_service_s" in m and m.get("load_seconds") and requests:
            return (r.info.run_id, m["endpoint_create_to_in_service_s"] + m.get("endpoint_teardown_s", 0.0),
                    m["load_seconds"], requests)
    return None


def _endpoint_expected(platform: str, requests: int) -> Optional[tuple[float, str]]:
    """(seconds the endpoint is expected to be up, where that comes from) for a load test of `requests`, from the
    newest finished endpoint run of the platform; None when there is none."""
    seen = _endpoint_seconds(platform)
    if seen is None:
        return None
    run_id, fixed, load, done = seen
    return fixed + load * requests / done, (f"from endpoint run {run_id[:8]}: create → serving and teardown "
                                            f"{fixed:.0f} s + its load test {load:.0f} s for {done:.0f} requests, "
                                            f"scaled to {requests}")


def endpoint_text(platform: str, usd_per_hour: float, basis: str, requests: int,
                  max_usd: Optional[float] = None) -> str:
    """The cost plan of `platbench endpoint`: the endpoint's price × the hours it is expected to be up, from
    the newest finished endpoint run of the platform (its create → serving and teardown seconds, its load
    test's seconds scaled to `requests`), else unknown. No upper bound: the endpoint is deleted when the load
    test ends, which no time limit bounds; with a budget, the budget bounds it (the endpoint's spend watch)."""
    head = f"Cost plan: the endpoint at {usd_per_hour:.4f} USD/h ({basis})"
    expected = _endpoint_expected(platform, requests)
    if expected is None:
        text = f"{head} × expected hours unknown (no finished endpoint run of {platform} yet): cost unknown"
    else:
        seconds, source = expected
        text = (f"{head} × {seconds / 3600:.3f} h expected ({source}) = {usd_per_hour * seconds / 3600:.4f} USD; "
                "batch inference not included")
    if max_usd is not None:
        margin, what = endpoint_margin(platform, usd_per_hour, max_usd)
        text += (f"\n  budget --max-usd {max_usd:g}: at most {max_usd / usd_per_hour * 3600:.0f} s up; the endpoint is "
                 "deleted before its spend (the price × the seconds since its deploy began) reaches it; its teardown "
                 f"begins {margin:.0f} s before ({what})")
    return text


# An endpoint bills until its teardown's deletes end, so a budget's watch stops it this long before the budget:
# the newest finished endpoint run's measured teardown (endpoint_teardown_s), else the platform's assumed figure
# (Endpoint.teardown_assumed_s, with what its teardown waits on), replaced by the first measured one.


def endpoint_teardown(platform: str) -> tuple[float, str]:
    """(seconds the endpoint's teardown is expected to take, where that comes from)."""
    from platforms.core import tracking

    T = tracking.Tag
    filt = f"tags.`{T.PLATFORM}` = '{platform}' and tags.`{T.KIND}` = 'endpoint' and tags.`{T.STATUS}` = 'finished'"
    for r in newest_runs(filt):
        if "endpoint_teardown_s" in r.data.metrics:
            return r.data.metrics["endpoint_teardown_s"], f"the teardown of endpoint run {r.info.run_id[:8]}"
    from platforms.core import registry

    return registry.endpoint_class(platform).teardown_assumed_s, "assumed: no finished endpoint run yet"


def endpoint_margin(platform: str, usd_per_hour: float, max_usd: float) -> tuple[float, str]:
    """(seconds before the budget at which the endpoint's watch stops it, what they are): the interrupt's 2 s +
    the expected teardown. A budget that would not cover them (nor a creation: --max-usd 0) is refused."""
    from platforms.core.budget_watch import MARGIN_S

    teardown, source = endpoint_teardown(platform)
    margin = MARGIN_S + teardown
    need = usd_per_hour * margin / 3600
    if max_usd <= 0 or max_usd <= need:
        raise UserError(f"--max-usd {max_usd:g}: the {platform} endpoint bills from its creation until its deletes end "
                        f"({MARGIN_S:g} s + a teardown of {teardown:.0f} s, {source}): at {usd_per_hour:.4f} USD/h the "
                        f"budget must exceed {need:.4f} USD; nothing was created")
    return margin, f"{MARGIN_S:g} s + teardown {teardown:.0f} s ({source})"


def unpriced_endpoint(platform: str, max_usd: float) -> UserError:
    """The refusal of a budget for an endpoint with no price."""
    return UserError(f"--max-usd {max_usd:g}: the {platform} endpoint has no price (platforms/{platform}/prices.yaml "
                     "or the price cache), so its spend cannot be watched; nothing was created")


def hold_endpoint(platform: str, usd_per_hour: Optional[float], requests: int, max_usd: Optional[float]) -> None:
    """Refuse, in one line, a budget for an endpoint with no price (its spend cannot be watched), one too small to
    cover its creation and teardown (endpoint_margin), or one the plan expects to cost more than the budget; an
    endpoint whose expected hours are unknown is held by its watch."""
    if max_usd is None:
        return
    if usd_per_hour is None:
        raise unpriced_endpoint(platform, max_usd)
    endpoint_margin(platform, usd_per_hour, max_usd)
    expected = _endpoint_expected(platform, requests)
    if expected is not None and usd_per_hour * expected[0] / 3600 > max_usd:
        raise UserError(f"--max-usd {max_usd:g}: the endpoint is expected to cost {usd_per_hour * expected[0] / 3600:.4f} "
                        f"USD ({usd_per_hour:.4f} USD/h × {expected[0]:.0f} s, {expected[1]}); lower --requests, choose "
                        "a cheaper instance or raise the budget; nothing was created")


def service_line(platform: str, label: str) -> CostLine:
    """An AutoML service's cost line: what its newest finished run cost (training + serving on its price table,
    the run's price basis said), else unknown; no upper bound (the service decides how long it trains)."""
    from platforms.core import tracking

    T = tracking.Tag
    filt = f"tags.`{T.PLATFORM}` = '{platform}' and tags.`{T.KIND}` = 'service' and tags.`{T.STATUS}` = 'finished'"
    for r in newest_runs(filt):
        if r.data.metrics.get("cost_usd") is not None:
            basis = r.data.tags.get(T.PRICE_SOURCE, "its price table")
            return CostLine(platform, label, None, None, "", None, f"as service run {r.info.run_id[:8]} cost: {basis}; "
                            "no upper bound: the service decides how long it trains", r.data.metrics["cost_usd"])
    return CostLine(platform, label, None, None, "", None,
                    f"an AutoML service with no finished run of {platform} yet: cost unknown until one has run")


def hours_lines(items: list[tuple[str, object, float]], region: Optional[str] = None,
                section: str = "training") -> list[CostLine]:
    """The cost of `items` [(platform, hardware, hours)] on their price tables, for a plan that knows its hours
    (a study's horizon, an endpoint kept up): hardware is a `platbench.instance_type` tag's form ('SKU' or
    'SKU+NxSKU') or a list of (SKU, count); the region is the one table region that prices it when not given.
    The hours are the plan's own, so they are the upper bound too; a hardware no table prices has no cost."""
    from platforms.core import pricing

    out = []
    for platform, hardware, hours in items:
        parts = _items(hardware)
        label = f"{platform} {hardware if isinstance(hardware, str) else '+'.join(f'{n}x{s}' for s, n in parts)}"
        regions = [region] if region else [r for r, skus in (pricing.table(platform).get(section) or {}).items()
                                           if all(s in skus for s, _ in parts)]
        quote = pricing.quote(platform, regions[0], parts, section) if len(regions) == 1 else None
        why = "" if quote else (f"no price for it in platforms/{platform}/prices.yaml ({section}"
                                + (f", {len(regions)} regions: give one" if len(regions) > 1 else "") + "): cost unknown")
        out.append(CostLine(platform, label, quote, hours, "the plan", hours, why, upper_from="the plan's hours"))
    return out


def _items(hardware) -> list[tuple[str, int]]:
    """'n1-standard-8+1xNVIDIA_TESLA_T4' → [('n1-standard-8', 1), ('NVIDIA_TESLA_T4', 1)]; a list as given."""
    if not isinstance(hardware, str):
        return [(str(s), int(n)) for s, n in hardware]
    out = []
    for part in hardware.split("+"):
        n, x, sku = part.partition("x")
        out.append((sku, int(n)) if x and n.isdigit() else (part, 1))
    return out
