"""What a workspace billed one job run, from its `system.billing.usage` table
(https://docs.databricks.com/aws/en/admin/system-tables/billing: one record per SKU and hour of usage, the run in
usage_metadata.job_run_id, DBUs in usage_quantity), priced by `system.billing.list_prices` at the time of use
(the join of the page's "list cost" examples), read through the SQL Statement Execution API as
sql_list_prices.py reads prices. The records arrive hours after the usage: a run with none yet is said so, not
counted as free. What this covers is the workspace's own units (DBUs); the cloud bills its VMs apart."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from platforms.prices.sql_list_prices import execute

API = "SQL Statement Execution API, system.billing.usage × system.billing.list_prices"
QUERY = ("SELECT SUM(u.usage_quantity), SUM(u.usage_quantity * lp.pricing.default), MAX(u.usage_end_time), COUNT(*) "
         "FROM system.billing.usage u JOIN system.billing.list_prices lp ON u.cloud = lp.cloud "
         "AND u.sku_name = lp.sku_name AND u.usage_unit = lp.usage_unit AND u.usage_start_time >= lp.price_start_time "
         "AND (lp.price_end_time IS NULL OR u.usage_end_time <= lp.price_end_time) "
         "WHERE u.usage_metadata.job_run_id = :run AND u.usage_unit = 'DBU' AND lp.currency_code = 'USD'")


@dataclass(frozen=True)
class Billed:
    units: float      # DBUs
    usd: float        # DBUs × the list USD per DBU when they were used
    until: str        # the last usage record's end
    source: str       # the workspace URL


def read(rule: dict, job_run_id: str) -> Optional[Billed]:
    """The run's billed DBUs and their USD, or None while the workspace has no usage record of it yet."""
    rows, host = execute(QUERY, {"run": job_run_id}, rule["warehouse_env"], "billing.usage")
    if not rows or rows[0][0] is None or not int(rows[0][3] or 0):
        return None
    units, usd, until, _ = rows[0]
    return Billed(float(units), float(usd), str(until), host)
