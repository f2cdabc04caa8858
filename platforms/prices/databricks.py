"""Databricks list prices: `system.billing.list_prices` read through the SQL Statement Execution API with
databricks-sdk's `statement_execution` (https://docs.databricks.com/aws/en/admin/system-tables/pricing,
https://docs.databricks.com/api/workspace/statementexecution/executestatement).

The table holds one row per SKU and price period (sku_name, cloud, currency_code, usage_unit, pricing.default
…); the answer's result.data_array holds the rows as strings in the manifest's column order. A Databricks
job's DBU part is DBU/h of its node type × USD per DBU of the workload's SKU: the USD per DBU is read here
(the workspace's own cloud and currency); DBU/h per node type is in no system table or API, so it stays the
`dbu_per_hour` typed in platforms/databricks/prices.yaml and the product stays `unverified`, its note
saying which factor is official. The VM part is an EC2 price (platforms/prices/aws.py).

Needs the workspace (DATABRICKS_HOST, DATABRICKS_TOKEN or a profile, as databricks-sdk reads them) and a
SQL warehouse (DATABRICKS_WAREHOUSE_ID); the SKU is PREMIUM_JOBS_COMPUTE unless DATABRICKS_PRICE_SKU says
otherwise. The SDK retries 429 answers itself; what still fails is one line."""
from __future__ import annotations

import os
import time
from typing import Iterable

from platforms.errors import UserError
from platforms.prices.cache import Fetched, now

API = "Databricks SQL Statement Execution API, system.billing.list_prices"
QUERY = ("SELECT pricing.default, currency_code, usage_unit, price_start_time FROM system.billing.list_prices "
         "WHERE sku_name = :sku AND currency_code = 'USD' AND usage_unit = 'DBU' AND price_end_time IS NULL "
         "ORDER BY price_start_time DESC LIMIT 1")


def usd_per_dbu(w=None, warehouse_id: str = "", sku: str = "") -> tuple[float, str, str]:
    """(USD per DBU, the SKU, the workspace URL) of the workload's SKU, now."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.errors import DatabricksError
    from databricks.sdk.service.sql import StatementParameterListItem, StatementState

    sku = sku or os.environ.get("DATABRICKS_PRICE_SKU") or "PREMIUM_JOBS_COMPUTE"
    warehouse_id = warehouse_id or os.environ.get("DATABRICKS_WAREHOUSE_ID", "")
    if not warehouse_id:
        raise UserError("databricks: no SQL warehouse: set DATABRICKS_WAREHOUSE_ID (system.billing.list_prices is read "
                        "through one)")
    try:
        w = w or WorkspaceClient()
        r = w.statement_execution.execute_statement(
            statement=QUERY, warehouse_id=warehouse_id, wait_timeout="30s",
            parameters=[StatementParameterListItem(name="sku", value=sku)])
        deadline = time.time() + 120
        while r.status.state in (StatementState.PENDING, StatementState.RUNNING) and time.time() < deadline:
            time.sleep(1)
            r = w.statement_execution.get_statement(r.statement_id)
    except DatabricksError as exc:
        raise UserError(f"databricks: list_prices: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # no host or credentials configured
        raise UserError(f"databricks: {str(exc).splitlines()[0]}") from None
    if r.status.state != StatementState.SUCCEEDED:
        why = r.status.error.message if r.status.error else r.status.state.value
        raise UserError(f"databricks: list_prices query {r.status.state.value}: {why}")
    rows = (r.result.data_array if r.result else None) or []
    if not rows:
        raise UserError(f"databricks: system.billing.list_prices has no current USD price for SKU {sku}")
    return float(rows[0][0]), sku, w.config.host


def dbu_items(wants: Iterable[tuple[str, str, str, float]], w=None, warehouse_id: str = "") -> tuple[list[Fetched], list[str]]:
    """(prices, not found) for the '<node type> DBU' SKUs: (section, region, sku, DBU/h) each."""
    wants = list(wants)
    if not wants:
        return [], []
    price, sku_name, host = usd_per_dbu(w, warehouse_id)
    got, missing = [], []
    fetched_at = now()
    for section, region, sku, dbu_per_hour in wants:
        if not dbu_per_hour:
            missing.append(f"{section}/{region}/{sku}: no dbu_per_hour in platforms/databricks/prices.yaml")
            continue
        got.append(Fetched(section, region, sku, round(dbu_per_hour * price, 6), host, API,
                           f"{QUERY} [sku={sku_name}]", fetched_at, status="unverified",
                           note=f"{dbu_per_hour} DBU/h (typed: no official API gives DBU/h per node type) x "
                                f"{price} USD/DBU ({sku_name}, official: system.billing.list_prices, {fetched_at[:10]})"))
    return got, missing
