"""`platbench prices`: refresh the price cache from the official sources, and show what the cost figures
use (each entry's status, source and date; a cached entry's age)."""
from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(help="prices from the providers' official price APIs (a dated cache) and what cost figures use",
                  no_args_is_help=True)


def _names(platforms: Optional[list[str]]) -> list[str]:
    from platforms.core import registry
    from platforms.prices import refresh

    names = platforms or refresh.priced_platforms()
    for n in names:
        registry.spec(n)  # an unknown platform: one line
    return names


@app.command("refresh")
def refresh_cmd(platforms: Optional[list[str]] = typer.Argument(None, help="default: every platform with a price "
                                                                              "source")) -> None:
    """Fetch the prices of the SKUs platbench uses from each provider's official price API into the cache."""
    from platforms.core import price_cache as cache
    from platforms.prices import refresh

    failed = 0
    for name in _names(platforms):
        r = refresh.refresh(name)
        if r.error:
            kept = cache.read(name)
            when = f"; the cache of {kept[0].fetched_at[:10]} ({cache.age_text(kept[0].fetched_at)}) stays" if kept else ""
            typer.echo(f"{name}: not refreshed: {r.error.removeprefix(name + ': ')}{when}", err=True)
            failed += name in refresh.priced_platforms()
            continue
        typer.echo(f"{name}: {len(r.fetched)} prices from {r.fetched[0].api if r.fetched else 'its source'} "
                   f"→ {cache.path(name)}" + (f"; {len(r.missing)} not found (stay unverified †)" if r.missing else ""))
        for line in r.missing:
            typer.echo(f"  not found: {line}")
    if failed:
        raise typer.Exit(1)


@app.command("billed")
def billed_cmd(platforms: Optional[list[str]] = typer.Argument(None, help="default: every platform that reports its "
                                                                             "bill later")) -> None:
    """Read what the platform billed for each ended run that has no billed figure yet (where it reports that only
    hours later) and record it on the run, for the report's cost section."""
    from platforms.core import registry
    from platforms.prices import billed

    names = platforms or billed.billed_platforms()
    for n in names:
        registry.spec(n)
    for name in names:
        lines = billed.billed(name)
        for ln in lines:
            typer.echo(f"{name}: run {ln.run_id} (job run {ln.key}): {ln.text}")
        if not lines:
            typer.echo(f"{name}: no ended run without a billed figure")


@app.command("show")
def show_cmd(platforms: Optional[list[str]] = typer.Argument(None, help="default: every platform with a price "
                                                                           "table")) -> None:
    """Every price the cost figures use: USD/h, status, source and date (a cached one with its age)."""
    from platforms.core import pricing
    from platforms.core import price_cache as cache

    from platforms.core import registry

    tabled = [p for p in registry.names() if pricing.table_path(p).is_file()]  # Nyckel's too: no source refreshes it
    for name in _names(platforms or tabled):
        for e in cache.read(name):  # prices in another currency (Apolo's credits): shown, never in a USD figure
            if e.currency != "USD":
                typer.echo(f"{name:<14} {e.section:<13} {e.region:<12} {e.sku:<28} {e.per_hour:>9.4f}  {e.currency}/h "
                           f"({e.source}, {e.fetched_at[:10]}, {cache.age_text(e.fetched_at)}; {e.note})")
        for section, regions in pricing.of(name).data.items():
            for region, skus in regions.items():
                for sku, e in skus.items():
                    age = f", {cache.age_text(e['fetched_at'])}" if e.get("fetched_at") else ""
                    mark = "" if e["status"] == "verified" else " †"
                    usd, per = (e["usd_per_hour"], "/h") if "usd_per_hour" in e else (e["usd_per_request"], "/request")
                    typer.echo(f"{name:<14} {section:<13} {region:<12} {sku:<28} {float(usd):>9.4f}{mark}  "
                               f"{e['status']} ({e['source']}, {e['date']}{age}){'' if per == '/h' else ' per request'}")
