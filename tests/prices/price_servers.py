"""One loopback server answering as the four official price APIs do, each in its documented format:

- AWS Price List Query API, GetProducts (JSON 1.1: POST /, X-Amz-Target AWSPriceListService.GetProducts;
  https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html): PriceList
  of aws_v1 product documents as JSON strings
  (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-files.html),
  TERM_MATCH filters on product attributes, NextToken paging (one product a page: every query pages);
  a fault answers ThrottlingException (HTTP 400, as the JSON protocol does).
- Azure Retail Prices API (GET /api/retail/prices?$filter=…;
  https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices): Items, NextPageLink
  (a full URL, null at the end; PAGE items a page), Count; a fault answers 429 with Retry-After.
- Cloud Billing Catalog API (GET /v1/services, /v1/services/{id}/skus;
  https://cloud.google.com/billing/docs/reference/rest/v1/services.skus/list): services / skus with
  nextPageToken; a fault answers 429 RESOURCE_EXHAUSTED in Google's JSON error format.
- Databricks SQL Statement Execution API (POST /api/2.0/sql/statements/;
  https://docs.databricks.com/api/workspace/statementexecution/executestatement) over a
  system.billing.list_prices of a few rows (https://docs.databricks.com/aws/en/admin/system-tables/pricing):
  status, manifest, result.data_array; a fault answers 429 with Retry-After. The statement of
  platforms/prices/sql_billed_usage.py is answered from a system.billing.usage of a few records
  (https://docs.databricks.com/aws/en/admin/system-tables/billing) joined with list_prices as the query says.

What it holds is the tests' own catalog, not real prices."""
from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _services import Faults

PAGE = 2


def aws_product(service: str, attributes: dict, usd: float, description: str = "", unit: str = "Hrs") -> str:
    sku = uuid.uuid4().hex[:16].upper()
    return json.dumps({
        "product": {"productFamily": "ML Instance", "attributes": {"servicecode": service, **attributes}, "sku": sku},
        "serviceCode": service, "version": "20261201000000", "publicationDate": "2026-12-01T00:00:00Z",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": unit, "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "description": description or f"${usd} per {unit}", "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                "pricePerUnit": {"USD": f"{usd:.10f}"}}},
            "sku": sku, "effectiveDate": "2026-12-01T00:00:00Z", "offerTermCode": "JRTCKXETXF", "termAttributes": {}}}}})


def gcp_sku(description: str, regions: list[str], usd: float, unit: str = "h") -> dict:
    sid = uuid.uuid4().hex[:12].upper()
    units, nanos = int(usd), round((usd - int(usd)) * 1e9)
    return {"name": f"services/VAI/skus/{sid}", "skuId": sid, "description": description,
            "category": {"serviceDisplayName": "Vertex AI", "resourceFamily": "Compute", "resourceGroup": "N1",
                         "usageType": "OnDemand"},
            "serviceRegions": regions,
            "pricingInfo": [{"effectiveTime": "2026-12-01T00:00:00Z", "summary": "",
                             "pricingExpression": {"usageUnit": unit, "usageUnitDescription": unit, "baseUnit": "s",
                                                   "baseUnitConversionFactor": 3600, "displayQuantity": 1,
                                                   "tieredRates": [{"startUsageAmount": 0, "unitPrice": {
                                                       "currencyCode": "USD", "units": str(units), "nanos": nanos}}]},
                             "currencyConversionRate": 1}],
            "serviceProviderName": "Google"}


class PriceServer(Faults, ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.faults, self.lock = [], threading.Lock()
        self.aws: list[str] = []        # product documents
        self.azure: list[dict] = []     # retail price items
        self.gcp_services = [{"name": "services/6F81-5844-456A", "serviceId": "6F81-5844-456A",
                              "displayName": "Compute Engine"},
                             {"name": "services/VAI", "serviceId": "VAI", "displayName": "Vertex AI"}]
        self.gcp_skus: list[dict] = []
        self.list_prices: list[dict] = []   # system.billing.list_prices rows
        self.usage: list[dict] = []         # system.billing.usage records
        self.requests: list[str] = []       # what was asked, in order ("aws AmazonEC2", "azure page 2" …)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: PriceServer

    def log_message(self, *args):
        pass

    def _send(self, status: int, body, headers: dict | None = None, ctype: str = "application/json"):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    # ------------------------------------------------------------------ AWS
    def do_POST(self):
        if self.path.startswith("/api/2.0/sql/statements"):
            return self._databricks(self._body())
        target = self.headers.get("X-Amz-Target", "")
        body = self._body()
        if target != "AWSPriceListService.GetProducts":
            return self._send(400, {"__type": "UnknownOperationException"}, ctype="application/x-amz-json-1.1")
        self.server.requests.append(f"aws {body.get('ServiceCode')}")
        if self.server.take_fault("aws") == "throttle":
            return self._send(400, {"__type": "ThrottlingException", "message": "Rate exceeded"},
                              ctype="application/x-amz-json-1.1")
        match = []
        for doc in self.server.aws:
            p = json.loads(doc)
            attrs = p["product"]["attributes"]
            if p["serviceCode"] == body["ServiceCode"] and all(
                    attrs.get(f["Field"]) == f["Value"] for f in body.get("Filters", [])):
                match.append(doc)
        start = int(body.get("NextToken") or 0)
        page = match[start:start + 1]
        out = {"FormatVersion": "aws_v1", "PriceList": page}
        if start + 1 < len(match):
            out["NextToken"] = str(start + 1)
        self._send(200, out, ctype="application/x-amz-json-1.1")

    # ------------------------------------------------------------------ GET: Azure, Google
    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/api/retail/prices":
            return self._azure(q)
        if url.path.startswith("/v1/services"):
            return self._gcp(url.path, q)
        if url.path.startswith("/api/2.0/sql/statements/"):
            return self._send(404, {"error_code": "NOT_FOUND", "message": "no such statement"})
        self._send(404, {"error": "not found"})

    def _azure(self, q: dict):
        self.server.requests.append("azure")
        if self.server.take_fault("azure") == "throttle":
            return self._send(429, {"Error": "Too many requests"}, {"Retry-After": "0"})
        conds = dict(re.findall(r"(\w+) eq '([^']*)'", q.get("$filter", "")))
        items = [i for i in self.server.azure if all(str(i.get(k)) == v for k, v in conds.items())]
        skip = int(q.get("$skip", 0))
        page = items[skip:skip + PAGE]
        nxt = None
        if skip + PAGE < len(items):
            nxt = f"{self.server.url}/api/retail/prices?" + urlencode({"$filter": q.get("$filter", ""), "$skip": skip + PAGE})
        self._send(200, {"BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
                         "Items": page, "NextPageLink": nxt, "Count": len(page)})

    def _gcp(self, path: str, q: dict):
        self.server.requests.append(f"gcp {path}")
        if self.server.take_fault("gcp") == "throttle":
            return self._send(429, {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}})
        if path == "/v1/services":
            items, key = self.server.gcp_services, "services"
        else:
            m = re.fullmatch(r"/v1/services/([^/]+)/skus", path)
            if not m:
                return self._send(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
            items, key = [s for s in self.server.gcp_skus if s["name"].startswith(f"services/{m.group(1)}/")], "skus"
        start = int(q.get("pageToken") or 0)
        out = {key: items[start:start + PAGE]}
        if start + PAGE < len(items):
            out["nextPageToken"] = str(start + PAGE)
        self._send(200, out)

    # ------------------------------------------------------------------ Databricks
    def _databricks(self, body: dict):
        self.server.requests.append("databricks")
        if self.server.take_fault("databricks") == "throttle":
            return self._send(429, {"error_code": "TOO_MANY_REQUESTS", "message": "Too many requests"},
                              {"Retry-After": "0"})
        params = {p["name"]: p.get("value") for p in body.get("parameters", [])}
        if "system.billing.usage" in body.get("statement", ""):
            return self._usage(params["run"])
        rows = [r for r in self.server.list_prices if r["sku_name"] == params.get("sku")
                and r["currency_code"] == "USD" and r["usage_unit"] == "DBU" and r["price_end_time"] is None]
        rows.sort(key=lambda r: r["price_start_time"], reverse=True)
        data = [[r["pricing"]["default"], r["currency_code"], r["usage_unit"], r["price_start_time"]] for r in rows[:1]]
        self._rows([("default", "STRING"), ("currency_code", "STRING"), ("usage_unit", "STRING"),
                    ("price_start_time", "TIMESTAMP")], data)

    def _usage(self, run: str):
        """SUM(DBUs), SUM(DBUs × list USD/DBU at the time), MAX(usage_end_time), COUNT(*) of the run's records."""
        got = []
        for u in self.server.usage:
            if u["usage_metadata"]["job_run_id"] != run or u["usage_unit"] != "DBU":
                continue
            for lp in self.server.list_prices:
                if (lp["cloud"], lp["sku_name"], lp["usage_unit"], lp["currency_code"]) == (
                        u["cloud"], u["sku_name"], u["usage_unit"], "USD") and u["usage_start_time"] >= \
                        lp["price_start_time"] and (lp["price_end_time"] is None
                                                    or u["usage_end_time"] <= lp["price_end_time"]):
                    got.append((float(u["usage_quantity"]), float(u["usage_quantity"]) * float(lp["pricing"]["default"]),
                                u["usage_end_time"]))
        # an aggregate without GROUP BY: one row, NULLs when nothing matched
        row = [str(sum(g[0] for g in got)), str(sum(g[1] for g in got)), max(g[2] for g in got), str(len(got))] \
            if got else [None, None, None, "0"]
        self._rows([("sum(usage_quantity)", "DECIMAL"), ("sum((usage_quantity * pricing.default))", "DECIMAL"),
                    ("max(usage_end_time)", "TIMESTAMP"), ("count(1)", "BIGINT")], [row])

    def _rows(self, cols: list[tuple[str, str]], data: list[list]):
        self._send(200, {"statement_id": uuid.uuid4().hex, "status": {"state": "SUCCEEDED"},
                         "manifest": {"format": "JSON_ARRAY", "schema": {"column_count": len(cols), "columns": [
                             {"name": n, "type_name": t, "type_text": t, "position": i} for i, (n, t) in enumerate(cols)]},
                                      "total_row_count": len(data), "total_chunk_count": 1, "truncated": False},
                         "result": {"chunk_index": 0, "row_offset": 0, "row_count": len(data), "data_array": data}})
