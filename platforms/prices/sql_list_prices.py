"""The USD per DBU of a workspace's SKU from its `system.billing.list_prices` table, read through the SQL
Statement Execution API with the workspace SDK's `statement_execution`
(https://docs.databricks.com/aws/en/admin/system-tables/pricing,
https://docs.databricks.com/api/workspace/statementexecution/executestatement).

The table holds one row per SKU and price period (sku_name, cloud, currency_code, usage_unit, pricing.default
…); the answer's result.data_array holds the rows as strings in the manifest's column order. A price of ours
is the table entry's `factor` (a field of its prices.yaml entry: DBU/h of the node type, which no system
table or API gives) × the USD per DBU of the rule's `price_sku` (or the SKU named by its `sku_env`); it stays
`unverified`, its note saying which factor is official. The workspace and credentials are the SDK's own
configuration (host, token or profile); the SQL warehouse comes from the variable the rule's
`warehouse_env` names. The SDK retries 429 answers itself; what still fails is one line."""
from __future__ import annotations

import os
import time

from platforms.core.price_cache import Fetched, now
from platforms.errors import UserError

API = "SQL Statement Execution API, system.billing.list_prices"
QUERY = ("SELECT pricing.default, currency_code, usage_unit, price_start_time FROM system.billing.list_prices "
         "WHERE sku_name = :sku AND currency_code = 'USD' AND usage_unit = 'DBU' AND price_end_time IS NULL "
         "ORDER BY price_start_time DESC LIMIT 1")


def execute(statement: str, params: dict[str, str], warehouse_env: str, what: str) -> tuple[list[list], str]:
    """(the answer's rows, the workspace URL) of one SQL statement run on the warehouse `warehouse_env` names,
    through the SDK's statement_execution (waits up to 30 s, then polls for two minutes); what fails is one line
    starting with `what`."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.errors import DatabricksError as ServiceError
    from databricks.sdk.service.sql import StatementParameterListItem, StatementState

    warehouse = os.environ.get(warehouse_env, "")
    if not warehouse:
        raise UserError(f"no SQL warehouse: set {warehouse_env} (system.billing tables are read through one)")
    try:
        w = WorkspaceClient()
        r = w.statement_execution.execute_statement(
            statement=statement, warehouse_id=warehouse, wait_timeout="30s",
            parameters=[StatementParameterListItem(name=k, value=v) for k, v in params.items()])
        deadline = time.time() + 120
        while r.status.state in (StatementState.PENDING, StatementState.RUNNING) and time.time() < deadline:
            time.sleep(1)
            r = w.statement_execution.get_statement(r.statement_id)
    except ServiceError as exc:
        raise UserError(f"{what}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # no host or credentials configured
        raise UserError(str(exc).splitlines()[0]) from None
    if r.status.state != StatementState.SUCCEEDED:
        why = r.status.error.message if r.status.error else r.status.state.value
        raise UserError(f"{what} query {r.status.state.value}: {why}")
    return (r.result.data_array if r.result else None) or [], w.config.host


def usd_per_unit(rule: dict) -> tuple[float, str, str]:
    """(USD per DBU, the SKU, the workspace URL) of the rule's SKU, now."""
    sku = os.environ.get(rule.get("sku_env", ""), "") or rule["price_sku"]
    rows, host = execute(QUERY, {"sku": sku}, rule["warehouse_env"], "list_prices")
    if not rows:
        raise UserError(f"system.billing.list_prices has no current USD price for SKU {sku}")
    return float(rows[0][0]), sku, host


def fetch(rule: dict, wants: list[tuple[str, str, str]], table=None) -> tuple[list[Fetched], list[str]]:
    """(prices, not found): each wanted entry's `factor` field × the SKU's USD per DBU."""
    if not wants:
        return [], []
    price, sku_name, host = usd_per_unit(rule)
    factor = rule["factor"]
    got, missing = [], []
    fetched_at = now()
    for section, region, sku in wants:
        n = float(((table.data.get(section) or {}).get(region) or {}).get(sku, {}).get(factor) or 0)
        if not n:
            missing.append(f"{section}/{region}/{sku}: no {factor} in its prices.yaml entry")
            continue
        got.append(Fetched(section, region, sku, round(n * price, 6), host, API, f"{QUERY} [sku={sku_name}]",
                           fetched_at, status="unverified",
                           note=f"{n} {factor} (typed: no official API gives it) x {price} USD/DBU ({sku_name}, "
                                f"official: system.billing.list_prices, {fetched_at[:10]})"))
    return got, missing
