"""Cost: each run billed and at list price, cost to target accuracy, endpoints kept up."""
from __future__ import annotations

from collections import defaultdict

from platforms.core import stats
from platforms.core.stats import pm
from platforms.core.tracking import Tag
from platforms.report import figures
from platforms.report.data import Run
from platforms.report.sections.blocks import Figure, Para, Section, Table
from platforms.report.sections.context import ReportContext
from platforms.report.sections.formats import ACC, PRICE, SEC, USD, fmt, pc_text
from platforms.report.sections.prices import (ENDPOINT_PRICE_METRIC, HOURS, UNVERIFIED, basis_text, billed_text,
                                              billed_usd, billing_notes, price_dates, price_per_hour, price_status,
                                              usd)


class CostSection(ReportContext):
    """Cost."""

    def cost(self) -> Section:
        s = Section("cost", "Cost")
        pool = self.store.training + self.store.unfinished
        billed = [r for r in pool if r.m("cost_usd") is not None or r.m("cost_list_estimate_usd") is not None]
        if not billed:
            s.add(Para("No runs with a cost yet: cloud launchers price each run from the price table "
                       "(platforms/<name>/prices.yaml); local runs are not billed.", "empty"))
        else:
            rows, ids = [], []
            for r in billed:
                rows.append([f"`{r.run_id}`", r.platform, r.model, pc_text(r.per_class), str(r.seed),
                             r.tags.get(Tag.INSTANCE_TYPE, "–"), r.outcome, fmt(r.m("billed_seconds"), SEC),
                             billed_text(r), usd(r.m("cost_list_estimate_usd"), [r], USD),
                             usd(price_per_hour(r), [r], PRICE), price_status(r) or "–", price_dates(r), basis_text(r)])
                ids.append([r.run_id])
            s.add(Table(["Run", "Platform", "Model", "Images/class", "Seed", "Instance", "Status", "Billed s",
                         "Billed USD", "List-price USD", "USD/h", "Price table", "Price date", "Price basis"], rows, ids,
                        id="cost-runs",
                        caption="billed: what the platform reports billing the run (billed seconds × list price; "
                                "billed units read later × their list price; credits), else 'not reported' (why: "
                                "below); list-price estimate: the run's time on the instance × the quote "
                                "(platforms/core/pricing.py); USD/h: the quote in the run's `platbench.price_source` "
                                "tag; price table: the status its entries had, and their date; price basis: the "
                                "launcher's `platbench.price_basis` tag"))
            notes = billing_notes(billed)
            if notes:
                s.add(Para("Billed figures — " + "; ".join(notes) + ".", "note"))
            grouped: dict[tuple, list[Run]] = defaultdict(list)
            for r in billed:  # spot and on-demand runs are not averaged together
                grouped[(r.platform, r.model, r.tags.get(Tag.INSTANCE_TYPE, "–"), basis_text(r))].append(r)
            bars, rows, ids = [], [], []
            for (p, model, inst, basis), g in grouped.items():
                b = [billed_usd(r) for r in g if billed_usd(r) is not None]
                li = [r.m("cost_list_estimate_usd") for r in g if r.m("cost_list_estimate_usd") is not None]
                mark = f" {UNVERIFIED}" if any(price_status(r) == "unverified" for r in g) else ""
                rows.append([p, model, inst, basis, str(len(g)), pm(b, USD) + mark if b else "–",
                             pm(li, USD) + mark if li else "–"])
                ids.append([r.run_id for r in g])
                name = f"{p} · {model} · {inst}" + ("" if basis == "–" else f" · {basis}") + mark
                bars.append((name, stats.mean_std(b) if b else None, stats.mean_std(li) if li else None))
            s.add(Figure("fig-cost", "Cost per training run", figures.cost_bars(bars),
                         "Mean ± std per platform × model × instance × price basis over its runs (all statuses: a "
                         f"failed run is billed too); {UNVERIFIED}: priced from an unverified price-table entry.",
                         self.cite(billed)))
            s.add(Table(["Platform", "Model", "Instance", "Price basis", "Runs", "Billed USD", "List-price USD"], rows,
                        ids, id="cost-table"))
        # to target accuracy
        targeted = [r for r in self.store.training if r.target_accuracy is not None and price_per_hour(r) is not None
                    and (r.m("cost_usd") is not None or r.m("cost_list_estimate_usd") is not None)]  # priced runs only
        if not targeted:
            s.add(Para("No priced runs with a target accuracy yet (`--target-accuracy`), so no cost to target.", "empty"))
        else:
            rows, ids = [], []
            for r in targeted:
                t = r.m("seconds_to_target")
                rows.append([f"`{r.run_id}`", r.platform, r.model, pc_text(r.per_class), ACC.format(r.target_accuracy),
                             fmt(t, SEC) if t is not None else "not reached", usd(price_per_hour(r), [r], PRICE),
                             usd(t * price_per_hour(r) / 3600 if t is not None else None, [r], USD)])
                ids.append([r.run_id])
            self.cite(targeted)
            agg, agg_ids = [], []
            groups = self.groups(targeted)
            fields = self.condition_fields(k[3] for k in groups)
            cond_col = bool(fields)
            for (p, model, pc, cond), g in groups.items():
                for target in sorted({r.target_accuracy for r in g}):
                    gt = [r for r in g if r.target_accuracy == target]
                    spent = [r.m("seconds_to_target") * price_per_hour(r) / 3600 for r in gt
                             if r.m("seconds_to_target") is not None]
                    mark = f" {UNVERIFIED}" if any(price_status(r) == "unverified" for r in gt) else ""
                    agg.append([p, model, pc_text(pc), *([self.condition_text(cond, fields)] if cond_col else []),
                                ACC.format(target), f"{len(spent)}/{len(gt)}",
                                pm(spent, USD) + mark if spent else "not reached"])
                    agg_ids.append([r.run_id for r in gt])
            s.add(Table(["Platform", "Model", "Images/class", *(["Condition"] if cond_col else []), "Target",
                         "Reached", "USD to target"], agg, agg_ids,
                        id="cost-target-groups", caption="mean ± std over the runs that reached the target"))
            s.add(Table(["Run", "Platform", "Model", "Images/class", "Target", "Train s to target", "USD/h",
                         "USD to target"], rows, ids, id="cost-target",
                        caption="USD to target = train seconds until test accuracy ≥ target × USD/h ÷ 3600 (training "
                                "time only: provisioning and data are not included)"))
        # endpoints
        priced = [r for r in self.store.serving if r.m(ENDPOINT_PRICE_METRIC) is not None]
        if not priced:
            s.add(Para("No endpoint runs with a price yet: `platbench endpoint PLATFORM` prices the endpoint it "
                       f"deploys (`{ENDPOINT_PRICE_METRIC}` and per day, month, year).", "empty"))
        else:
            rows, ids = [], []
            for r in priced:
                h = r.m(ENDPOINT_PRICE_METRIC)
                rps = r.m("load_requests_per_s")
                per = [r.m(f"endpoint_usd_per_{unit}") if r.m(f"endpoint_usd_per_{unit}") is not None else h * n
                       for unit, n in HOURS.items()]
                inst = r.params.get("instance_type") or r.params.get("machine_type") or r.tags.get(Tag.INSTANCE_TYPE, "–")
                rows.append([f"`{r.run_id}`", r.platform, inst, fmt(r.m("endpoint_create_to_in_service_s"), SEC)]
                            + [usd(per[0], [r], PRICE)] + [usd(v, [r], "{:,.2f}") for v in per[1:]]
                            + [usd(h / (rps * 3600) * 1e6 if rps else None, [r], "{:,.2f}"),
                               self.store.endpoint_notes.get(r.run_id, "real-time inference price"),
                               price_status(r) or "–", price_dates(r)])
                ids.append([r.run_id])
            self.cite(priced)
            s.add(Table(["Run", "Platform", "Instance", "Create → serving s", "USD/hour", "USD/day", "USD/month",
                         "USD/year", "USD per 1M requests (measured req/s)", "Price note", "Price table", "Price date"], rows, ids,
                        id="cost-endpoints",
                        caption="an endpoint kept up around the clock (`endpoint_usd_per_*`); month = 730 h, year = "
                                "8,760 h; per 1M requests: USD/hour at the load test's measured requests/s"))
        priced_runs = billed + targeted + priced
        if any(price_status(r) == "unverified" for r in priced_runs):
            s.add(Para(f"{UNVERIFIED} marks a figure computed from a price-table entry with `status: unverified` "
                       "(platforms/<name>/prices.yaml: recorded without re-reading the live price page): confirm the price "
                       "on its source page before quoting the figure.", "note"))
        return s
