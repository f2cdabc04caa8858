"""`platbench report`: every number in report.md and index.html checked against the MLflow runs it cites.

Two stores:
- the local sweep of tests/_sweep.py (real runs: CPU, model small, bundled digits data), read back
  here with MlflowClient, independently of platforms/report, and compared cell by cell;
- a fixture store written through platforms.core.tracking with the launchers' own metric names, for the
  sections local runs cannot fill (upload/download s/MB, latency, cost, several platforms) and for the
  statistics: one value per run, exact tests checked against scipy (tests/test_stats.py has the rest).
"""
from __future__ import annotations

import json
import math
import os
import re
import statistics
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import platbench
from _sweep import SWEEP_NAME, swept

from mlflow.tracking import MlflowClient

SECTIONS = ["summary", "time-accuracy", "scaling", "ablation", "pareto", "phases", "transfer", "cold-transfer", "latency", "cost",
            "published", "usability", "runs", "method"]
# the fixture store's tests here and in test_report_browser.py: one xdist worker, the store and its report made
# once (tests/conftest.py groups the tests of a module fixture by module, this group spans both modules)
FIXTURE_GROUP = pytest.mark.xdist_group("report-fixture")
ALL_FIGURES = ["fig-time-accuracy", "fig-ablation", "fig-pareto", "fig-phases", "fig-transfer", "fig-latency",
               "fig-cost"]


# ------------------------------------------------------------------------------------------ parsing helpers
def md_tables(md: str) -> list[list[dict]]:
    """Every Markdown table as a list of {column: cell} rows."""
    tables, lines = [], md.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            cols = split_row(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(dict(zip(cols, split_row(lines[i]))))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def split_row(line: str) -> list[str]:
    return [c.strip().strip("`") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def md_section(md: str, sid: str) -> str:
    start = md.index(f'<a id="{sid}"></a>')
    nxt = md.find('<a id="', start + 5)
    return md[start:nxt if nxt > 0 else None]


class HtmlTables(HTMLParser):
    """Tables by id: rows of cell texts, with each row's data-runs."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[tuple[list[str], str]]] = {}
        self.sections: list[str] = []
        self.figures: dict[str, dict] = {}
        self._table = self._row = self._cell = None
        self._runs = ""
        self._figure = None
        self._in_details = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "table":
            self._table = a.get("id", f"anon{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row, self._runs = [], a.get("data-runs", "")
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "figure":
            self._figure = a["id"]
            self.figures[self._figure] = {"runs": [], "img": None}
        elif tag == "img" and self._figure:
            self.figures[self._figure]["img"] = a.get("src", "")
        elif tag == "details" and self._figure:
            self._in_details = True
        elif tag == "code" and self._in_details:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row and self._table is not None:
                self.tables[self._table].append((self._row, self._runs))
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "code" and self._in_details and self._cell is not None:
            self.figures[self._figure]["runs"].append(self._cell.strip())
            self._cell = None
        elif tag == "details":
            self._in_details = False
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def parse_html(path: Path) -> HtmlTables:
    p = HtmlTables()
    p.feed(path.read_text())
    return p


def html_rows(page: HtmlTables, table_id: str) -> list[dict]:
    rows = page.tables[table_id]
    head = rows[0][0]
    return [dict(zip(head, cells), _runs=runs) for cells, runs in rows[1:]]


def pm(values, f="{:.4f}") -> str:
    """The report's "mean ± std" (sample std), computed here with the standard library."""
    if len(values) == 1:
        return f.format(values[0])
    return f"{f.format(statistics.mean(values))} ± {f.format(statistics.stdev(values))}"


def short_commit(c: str) -> str:
    return c[:-6][:12] + "-dirty" if c.endswith("-dirty") else c[:12]


PLAIN, EVALUATED = "Images/s (plain model)", "Images/s (as evaluated, with TTA)"


def speed(metrics: dict, kind: str):
    """The trainer's throughput as the report reads it: the new names, the old one as "as evaluated"."""
    if kind == "plain":
        return metrics.get("plain_throughput_images_per_s")
    return metrics.get("evaluated_throughput_images_per_s", metrics.get("throughput_images_per_s"))


# ------------------------------------------------------------------------------------------ the local sweep
@pytest.fixture(scope="module")
def local_report(tmp_path_factory, digits_data):
    cwd = swept(tmp_path_factory, digits_data)
    proc = platbench("report", "--sweep", SWEEP_NAME, "--out", "rep", cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote rep/report.md and rep/index.html" in proc.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name("platbench")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`platbench.sweep` = '{SWEEP_NAME}'")
    children = [r for r in runs if r.data.tags.get("platbench.kind") != "sweep"]
    finished = [r for r in children if r.info.status == "FINISHED" and r.data.tags["platbench.status"] == "finished"]
    assert len(finished) == 4
    return cwd / "rep", finished


def test_every_run_row_matches_mlflow(local_report):
    out, runs = local_report
    md = (out / "report.md").read_text()
    table = next(t for t in md_tables(md_section(md, "runs")) if t and "Test accuracy" in t[0])
    by_id = {row["Run"]: row for row in table}
    page = parse_html(out / "index.html")
    html_by_id = {row["Run"]: row for row in html_rows(page, "runs-table")}
    assert set(by_id) == set(html_by_id) == {r.info.run_id for r in runs}
    for r in runs:
        m, t, p = r.data.metrics, r.data.tags, r.data.params
        expected = {
            "Platform": "local", "Model": "small", "Images/class": p["per_class"], "Seed": p["seed"], "Status": "finished",
            "Test accuracy": f"{m['final_test_accuracy']:.4f}", "Train s": f"{m['seconds_train']:.2f}",
            "End-to-end s": f"{m['seconds_wall']:.2f}", EVALUATED: f"{speed(m, 'evaluated'):.1f}",
            PLAIN: "–" if speed(m, "plain") is None else f"{speed(m, 'plain'):.1f}",
            "Dataset": t["platbench.dataset_fingerprint"][:12], "Commit": short_commit(t["platbench.git_commit"]),
            "Sweep cell": f"{SWEEP_NAME} {t['platbench.sweep_cell']}",
        }
        for col, value in expected.items():
            assert by_id[r.info.run_id][col] == value, (col, by_id[r.info.run_id])
            assert html_by_id[r.info.run_id][col] == value, (col, html_by_id[r.info.run_id])
        assert html_by_id[r.info.run_id]["_runs"] == r.info.run_id


def test_group_means_and_spreads_match_mlflow(local_report):
    out, runs = local_report
    md = (out / "report.md").read_text()
    page = parse_html(out / "index.html")
    groups: dict[str, list] = {}
    for r in runs:
        groups.setdefault(r.data.params["per_class"], []).append(r)
    assert sorted(groups, key=int) == ["5", "20"] and all(len(g) == 2 for g in groups.values())
    ta_md = {row["Images/class"]: row for row in md_tables(md_section(md, "time-accuracy"))[0]}
    ta_html = {row["Images/class"]: row for row in html_rows(page, "time-accuracy-table")}
    ab_md = {row["Images/class"]: row for row in md_tables(md_section(md, "ablation"))[0]}
    pa_md = {row["Images/class"]: row for row in md_tables(md_section(md, "pareto"))[0]}
    for pc, g in groups.items():
        acc = [r.data.metrics["final_test_accuracy"] for r in g]
        train = [r.data.metrics["seconds_train"] for r in g]
        wall = [r.data.metrics["seconds_wall"] for r in g]
        ips = [speed(r.data.metrics, "evaluated") for r in g]
        for row in (ta_md[pc], ta_html[pc]):
            assert row["Runs"] == "2"
            assert row["Test accuracy"] == pm(acc)
            assert row["Train s"] == pm(train, "{:.2f}") and row["End-to-end s"] == pm(wall, "{:.2f}")
        assert set(ta_html[pc]["_runs"].split()) == {r.info.run_id for r in g}
        assert ab_md[pc]["Test accuracy"] == pm(acc) and ab_md[pc]["Seeds"] == "2"
        assert ab_md[pc]["Min"] == f"{min(acc):.4f}" and ab_md[pc]["Max"] == f"{max(acc):.4f}"
        assert pa_md[pc][EVALUATED] == pm(ips, "{:.1f}")
    # the frontier, recomputed from the group means (accuracy pairs with the speed it was measured at)
    means = {pc: (statistics.mean([speed(r.data.metrics, "evaluated") for r in g]),
                  statistics.mean([r.data.metrics["final_test_accuracy"] for r in g])) for pc, g in groups.items()}
    for pc, (x, y) in means.items():
        dominated = any(x2 >= x and y2 >= y and (x2 > x or y2 > y) for q, (x2, y2) in means.items() if q != pc)
        assert pa_md[pc]["Frontier"] == ("no" if dominated else "yes")


def test_phase_split_matches_mlflow(local_report):
    out, runs = local_report
    md = (out / "report.md").read_text()
    row = md_tables(md_section(md, "phases"))[0][0]
    totals = [r.data.metrics["seconds_total"] for r in runs]
    walls = [r.data.metrics["seconds_wall"] for r in runs]
    assert row["Platform"] == "local" and row["Runs"] == "4"
    assert row["train s"] == pm(totals, "{:.2f}")       # local reports no phases: the trainer's own time
    assert row["other s"] == pm([w - t for w, t in zip(walls, totals)], "{:.2f}")
    assert row["End-to-end s"] == pm(walls, "{:.2f}")
    assert row["upload s"] == "–" and row["queue/provisioning s"] == "–"


def test_every_figure_cites_the_runs_behind_it(local_report):
    out, runs = local_report
    ids = {r.info.run_id for r in runs}
    page = parse_html(out / "index.html")
    assert page.sections == SECTIONS
    assert set(page.figures) == {"fig-time-accuracy", "fig-ablation", "fig-pareto", "fig-phases"}
    md = (out / "report.md").read_text()
    fingerprints = {r.data.tags["platbench.dataset_fingerprint"][:12] for r in runs}
    for fid, fig in page.figures.items():
        assert set(fig["runs"]) == ids, fid
        assert fig["img"].startswith("data:image/svg+xml;base64,")
        assert (out / "figures" / f"{fid}.svg").read_text().startswith("<svg")
        assert f"](figures/{fid}.svg)" in md
    for fp in fingerprints:
        assert f"dataset fingerprint `{fp}`" in md
    for r in runs:
        assert f"`{r.data.tags['platbench.dataset_fingerprint']}`" in md_section(md, "runs")  # full value listed


def test_sections_without_data_say_so(local_report):
    out, _ = local_report
    md = (out / "report.md").read_text()
    assert "No runs with upload or download s/MiB yet" in md_section(md, "transfer")
    assert "No load or endpoint runs yet" in md_section(md, "latency")
    assert "No runs with a cost yet" in md_section(md, "cost")
    assert "No endpoint runs with a price yet" in md_section(md, "cost")
    assert "no difference between platforms is tested or called" in md_section(md, "time-accuracy")
    html_text = (out / "index.html").read_text()
    assert html_text.count('class="empty"') >= 4
    assert not re.search(r'(src|href)="(https?:)?//', html_text)


# ------------------------------------------------------------------------------------------ a fixture store
@contextmanager
def tracking_uri(uri: str):
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


FIXTURE_PLATFORMS = {  # platform → (instance, quote items, upload s/MB centre, latency ms centre, price basis)
    "sagemaker": ("ml.g4dn.xlarge", ("us-east-1", [("ml.g4dn.xlarge", 1)]), 0.40, 30.0, "on-demand (no spot price)"),
    "vertex": ("n1-standard-4", ("us-central1", [("n1-standard-4", 1), ("NVIDIA_TESLA_T4", 1)]), 0.10, 60.0, "spot"),
}
MIB = 1024 * 1024
CACHED_SEED = 2      # these runs found every shard staged: upload_bytes_sent 0 (a sweep's later cells)
PARTIAL_SEED = 1     # these sent half the dataset: s/MB is over what was sent
OLD_NAMES_SEED = 0   # vertex runs with this seed log the throughput/latency names from before the split


def write_fixture_store(folder: Path) -> str:
    """Runs as the launchers, the load tool and batch inference log them (their metric names), with
    made-up values: sagemaker uploads clearly slower than vertex; every request of vertex clearly slower
    than sagemaker's, but only 3 serving runs per platform (too few to call a difference run by run);
    runs with the compliance check failed that would change every figure if they were counted."""
    from platforms.core import pricing
    from platforms.core import tracking
    from platforms.core.tracking import Tag

    uri = f"sqlite:///{folder / 'fixture.db'}"
    rng = np.random.default_rng(7)
    with tracking_uri(uri):
        for platform, (instance, (region, items), upload, latency, basis) in FIXTURE_PLATFORMS.items():
            quote = pricing.quote(platform, region, items)
            for model, base in (("small", 0.55), ("fast", 0.80)):
                for pc in (5, 20):
                    for seed in (0, 1, 2):
                        acc = base + 0.1 * (pc == 20) + rng.normal(0, 0.02)
                        train = (20 if model == "small" else 35) * (1 + pc / 20) * rng.uniform(0.9, 1.1)
                        phases = {"queued": rng.uniform(5, 20), "provisioning": rng.uniform(60, 120),
                                  "image_pull": rng.uniform(20, 40), "downloading": rng.uniform(2, 6),
                                  "training": train + 15, "uploading": rng.uniform(1, 3)}
                        billed = sum(v for k, v in phases.items() if k != "queued")
                        params = {"model": model, "per_class": pc, "seed": seed, "target_accuracy": 0.6}
                        # a price table entry confirmed since: one vertex run carries a verified quote
                        verified = platform == "vertex" and model == "fast" and pc == 20 and seed == 0
                        tags = {Tag.PLATFORM: platform, Tag.MODEL: model, Tag.INSTANCE_TYPE: instance,
                                Tag.REGION: region,
                                Tag.PRICE_SOURCE: quote.sources.replace("unverified", "verified") if verified
                                else quote.sources, "platbench.price_basis": basis,
                                Tag.DATASET_FINGERPRINT: "f" * 64, Tag.IMAGE_DIGEST: "sha256:" + "ab" * 32,
                                "platbench.test_fixture": "true"}
                        with tracking.tracked_run(f"{platform}-{model}", params, tags) as run:
                            mb = 12.5
                            reached = acc >= 0.6
                            ips = (9000 if model == "small" else 4000) * rng.uniform(0.9, 1.1)
                            speed = ({"throughput_images_per_s": ips, "latency_ms_per_image": 0.2}
                                     if platform == "vertex" and seed == OLD_NAMES_SEED else
                                     {"evaluated_throughput_images_per_s": ips, "evaluated_latency_ms_per_image": 0.2,
                                      "plain_throughput_images_per_s": ips * 6, "plain_latency_ms_per_image": 0.05})
                            sent = {CACHED_SEED: 0, PARTIAL_SEED: mb * MIB / 2}.get(seed, mb * MIB)
                            upload_s = upload * sent / MIB * rng.uniform(0.8, 1.2) if sent else 0.05
                            run.metrics({
                                "final_test_accuracy": acc, "seconds_train": train, "seconds_total": train + 4,
                                **speed, "seconds_to_target": train * 0.7 if reached else None,
                                # staging logs upload_s_per_mb over the whole dataset, cached or not
                                "upload_seconds": upload_s, "upload_bytes_sent": sent,
                                "upload_s_per_mb": upload_s / mb, "upload_mb": mb,
                                "download_s_per_mb": 0.05 * rng.uniform(0.8, 1.2),
                                "seconds_wall": billed + phases["queued"] + upload * mb + 8,
                                "billed_seconds": billed, "cost_usd": quote.cost(billed),
                                "cost_list_estimate_usd": quote.cost(billed + 10),
                                "collect_seconds": rng.uniform(1, 2),
                                **{f"phase_seconds_{k}": v for k, v in phases.items()}})
                            run.tags({Tag.STATUS: "finished"})
                            run.end("FINISHED")
            with tracking.tracked_run(f"{platform}-small", {"model": "small", "seed": 9}, {
                    Tag.PLATFORM: platform, Tag.MODEL: "small", "platbench.test_fixture": "true"}) as run:
                run.metrics({"upload_s_per_mb": upload, "upload_seconds": upload * 12.5,
                             "upload_bytes_sent": 12.5 * MIB})
                run.tags({Tag.STATUS: "failed"})
                run.end("FAILED")
            for i in range(2):  # two load runs per platform, every sample in load.json
                lat = rng.lognormal(math.log(latency), 0.3, 300)
                doc = {"samples": {"latency_ms": [round(x, 3) for x in lat], "error": [None] * 299 + ["timeout"]}}
                ok = lat[:299]
                with tracking.tracked_run(f"load-{platform}", {"requests": 300}, {
                        Tag.PLATFORM: platform, Tag.MODEL: "small", Tag.KIND: "load", Tag.INSTANCE_TYPE: instance,
                        "platbench.test_fixture": "true"}) as run:
                    run.metrics({"load_ok": 299, "load_failed": 1, "load_error_rate": 1 / 300,
                                 "load_latency_p50_ms": float(np.percentile(ok, 50)),
                                 "load_latency_p90_ms": float(np.percentile(ok, 90)),
                                 "load_latency_p99_ms": float(np.percentile(ok, 99)),
                                 "load_latency_mean_ms": float(ok.mean()), "load_requests_per_s": 40.0 + i})
                    path = folder / "load.json"
                    path.write_text(json.dumps(doc))
                    run.client.log_artifact(run.run_id, str(path))
                    run.tags({Tag.STATUS: "finished"})
                    run.end("FINISHED")
            # an endpoint run as platforms/endpoints.py logs it: price per hour/day/month/year, load figures,
            # endpoint.json with the load report (every sample) and the cost's note
            hourly = quote.usd_per_hour
            lat = rng.lognormal(math.log(latency), 0.3, 200)
            doc = {"cost": {"usd_per": {}, "basis": quote.sources, "note": "no real-time inference price for this "
                            "machine in prices.yaml; the training list price stands in"},
                   "load": {"samples": {"latency_ms": [round(x, 3) for x in lat], "error": [None] * 200}}}
            with tracking.tracked_run(f"endpoint-{platform}", {"instance_type": instance}, {
                    Tag.PLATFORM: platform, Tag.KIND: "endpoint", Tag.PRICE_SOURCE: quote.sources}) as run:
                run.metrics({**{f"endpoint_usd_per_{u}": round(hourly * h, 4) for u, h in
                                (("hour", 1), ("day", 24), ("month", 730), ("year", 8760))},
                             "endpoint_create_to_in_service_s": 300.0, "load_ok": 200, "load_error_rate": 0.0,
                             "load_latency_p50_ms": float(np.percentile(lat, 50)), "load_requests_per_s": 25.0,
                             "batch_seconds_per_mb": 0.9 if platform == "sagemaker" else 0.75})
                path = folder / "endpoint.json"
                path.write_text(json.dumps(doc))
                run.client.log_artifact(run.run_id, str(path))
                run.tags({Tag.STATUS: "finished"})
                run.end("FINISHED")
            with tracking.tracked_run(f"batch-{platform}", {"mode": "endpoint"}, {
                    Tag.PLATFORM: platform, Tag.MODEL: "small", Tag.KIND: "batch_inference"}) as run:
                run.metrics({"batch_seconds_per_mb": 0.8 if platform == "sagemaker" else 0.7})
                run.tags({Tag.STATUS: "finished"})
                run.end("FINISHED")
        # the compliance checker's verdict (it sets the tag later; set here by hand): outliers that every
        # figure would show if they were counted
        with tracking.tracked_run("checked-out", {"model": "small", "per_class": 5, "seed": 7, "target_accuracy": 0.6},
                                  {Tag.PLATFORM: "sagemaker", Tag.MODEL: "small", "platbench.test_fixture": "true",
                                   Tag.PRICE_SOURCE: pricing.quote("sagemaker", "us-east-1",
                                                                   [("ml.g4dn.xlarge", 1)]).sources}) as run:
            run.metrics({"final_test_accuracy": 0.99, "seconds_train": 1.0, "seconds_total": 2.0, "seconds_wall": 3.0,
                         "evaluated_throughput_images_per_s": 1e6, "upload_seconds": 100.0,
                         "upload_bytes_sent": 1.0 * MIB, "upload_s_per_mb": 100.0, "download_s_per_mb": 100.0,
                         "billed_seconds": 1.0, "cost_usd": 1000.0, "seconds_to_target": 0.5})
            run.tags({Tag.STATUS: "finished", "platbench.check": "failed",
                      "platbench.check_reason": "trained on the test split"})
            run.end("FINISHED")
        with tracking.tracked_run("load-checked-out", {"requests": 3}, {
                Tag.PLATFORM: "vertex", Tag.MODEL: "small", Tag.KIND: "load", "platbench.test_fixture": "true"}) as run:
            run.metrics({"load_ok": 3, "load_latency_p50_ms": 1.0})
            run.tags({Tag.STATUS: "finished", "platbench.check": "failed"})
            run.end("FINISHED")
    return uri


_FIXTURE: dict = {}


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    """(report folder, store URI, build()'s result); made once per session, shared with the browser test."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _FIXTURE:
        folder = tmp_path_factory.mktemp("fixture-store")
        uri = write_fixture_store(folder)
        from platforms.report import build

        with tracking_uri(uri):
            written = build(folder / "rep", root=Path(__file__).resolve().parent.parent)
        _FIXTURE[key] = (folder / "rep", uri, written)
    return _FIXTURE[key]


def fixture_runs(uri: str, checked_out: bool = False):
    """The fixture's runs, read back with MlflowClient; without the compliance-failed ones unless asked."""
    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name("platbench")
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    return c, [r for r in runs if checked_out or r.data.tags.get("platbench.check") != "failed"]


@FIXTURE_GROUP
def test_fixture_report_has_every_figure(fixture_report):
    out, _, written = fixture_report
    assert written.sections == SECTIONS
    page = parse_html(out / "index.html")
    assert list(page.figures) == ALL_FIGURES
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(f"{f}.svg" for f in ALL_FIGURES)


@FIXTURE_GROUP
def test_the_page_shows_no_markdown_marks_and_log_ticks_are_plain_numbers(fixture_report):
    """Issue 25: headings and the contents showed literal backticks ("(`platbench transfer`)"); log axes
    labelled their minor ticks in scientific notation, which overlapped ("3×10⁰4×10⁰6×10⁰")."""
    out, _, _ = fixture_report
    text = (out / "index.html").read_text()
    assert "`" not in text and "**" not in text
    assert "<h2>Cold transfers, batch by batch (<code>platbench transfer</code>)</h2>" in text
    assert '<a href="#cold-transfer">Cold transfers, batch by batch (<code>platbench transfer</code>)</a>' in text
    for fid in ("fig-time-accuracy", "fig-pareto", "fig-latency"):
        svg = (out / "figures" / f"{fid}.svg").read_text()
        ticks = [t for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg) if re.match(r"[\d.,]+$", t.strip())]
        assert len(ticks) >= 2, fid
        assert "mathdefault" not in svg and "×" not in svg, fid
    latency = (out / "figures" / "fig-latency.svg").read_text()
    assert {"20", "30", "50", "100"} & set(re.findall(r"<text[^>]*>([^<]*)</text>", latency))  # plain ms


@FIXTURE_GROUP
def test_upload_compares_one_figure_per_run_that_sent_bytes(fixture_report):
    """Cached runs (upload_bytes_sent 0) are counted, never pooled; s/MB is over the bytes sent; the p-value
    is scipy's exact Mann–Whitney on those per-run figures."""
    from scipy import stats

    out, uri, _ = fixture_report
    _, runs = fixture_runs(uri)
    groups, cached = {}, {}
    for r in runs:
        m, plat = r.data.metrics, r.data.tags.get("platbench.platform")
        if "upload_bytes_sent" not in m or r.data.tags.get("platbench.kind") is not None:
            continue
        if m["upload_bytes_sent"] == 0:
            cached[plat] = cached.get(plat, 0) + 1
        else:
            groups.setdefault(plat, []).append(m["upload_seconds"] / (m["upload_bytes_sent"] / MIB))
    assert cached == {"sagemaker": 4, "vertex": 4} and {len(v) for v in groups.values()} == {9}
    p = stats.mannwhitneyu(groups["sagemaker"], groups["vertex"], method="exact").pvalue
    md = (out / "report.md").read_text()
    section = md_section(md, "transfer")
    line = next(ln for ln in section.splitlines() if ln.startswith("> upload s/MiB"))
    assert "exact Mann–Whitney" in line and "sagemaker n=9, vertex n=9" in line
    assert f"p = {p:.4f}" in line or (p < 1e-4 and "p < 0.0001" in line)
    assert "sagemaker higher than vertex" in line  # clearly apart and enough runs: called
    ratio = np.median(groups["sagemaker"]) / np.median(groups["vertex"])
    assert f"median sagemaker/vertex ×{ratio:.3g}" in line
    rows = [r for r in md_tables(section)[0] if r["Figure"].startswith("upload")]
    assert {r["Platform"] for r in rows} == {"sagemaker", "vertex"}
    for row in rows:
        v = groups[row["Platform"]]
        assert row["Runs"] == str(len(v)) and row["Median"] == f"{np.median(v):.4f}" and row["Mean ± std"] == pm(v)
        assert row["Cached (sent nothing)"] == "4"
    assert "8 run(s) sent nothing" in section
    # two batch-inference figures per platform: too few to call anything, and the report says how many
    batch = next(ln for ln in section.splitlines() if ln.startswith("> batch inference"))
    assert "too few runs" in batch and "sagemaker n=2, vertex n=2" in batch and "4 runs per group" in batch
    assert "higher than" not in batch
    # one unit, MiB, named in every header: these runs logged batch_seconds_per_mb over 10^6 bytes (issue 25)
    legacy = {"sagemaker": [0.9, 0.8], "vertex": [0.75, 0.7]}
    for row in (r for r in md_tables(section)[0] if r["Figure"] == "batch inference s/MiB"):
        assert row["Median"] == f"{np.median(legacy[row['Platform']]) * MIB / 1e6:.4f}"
    assert {r["Figure"] for r in md_tables(section)[0]} == {"upload s/MiB (staging the dataset, over bytes sent)",
                                                           "download s/MiB (the job reading it)", "batch inference s/MiB"}
    assert "## Upload and download seconds per MiB" in md and " MB" not in section


@FIXTURE_GROUP
def test_costs_match_mlflow(fixture_report):
    out, uri, _ = fixture_report
    _, runs = fixture_runs(uri)
    md = (out / "report.md").read_text()
    section = md_section(md, "cost")
    tables = md_tables(section)
    per_run = {row["Run"]: row for row in tables[0]}
    to_target = {row["Run"]: row for row in next(t for t in tables if "Run" in t[0] and "USD to target" in t[0])}
    endpoints = {row["Run"]: row for row in next(t for t in tables if "USD/year" in t[0])}
    groups = {(row["Platform"], row["Model"], row["Images/class"]): row
              for row in next(t for t in tables if "Reached" in t[0])}
    priced = [r for r in runs if "cost_usd" in r.data.metrics]
    assert set(per_run) == {r.info.run_id for r in priced}
    verified = 0
    for r in priced:
        m = r.data.metrics
        price = price_of(r)
        row = per_run[r.info.run_id]
        mark = "" if "(" in r.data.tags["platbench.price_source"] and "unverified" not in r.data.tags[
            "platbench.price_source"] else " †"  # every figure from an unverified price-table entry is marked
        verified += mark == ""
        assert row["Price table"] == ("verified" if mark == "" else "unverified")
        assert row["Billed USD"] == f"{m['cost_usd']:.4f}{mark}"
        assert row["List-price USD"] == f"{m['cost_list_estimate_usd']:.4f}{mark}"
        assert row["Billed s"] == f"{m['billed_seconds']:.2f}" and row["USD/h"] == f"{price:.4f}{mark}"
        assert row["Price basis"] == {"spot": "spot", "on-demand (no spot price)": "spot run priced at on-demand (no "
                                      "spot price in the table)"}[r.data.tags["platbench.price_basis"]]
        # the launcher's cost is billed seconds × that price
        assert m["cost_usd"] == pytest.approx(m["billed_seconds"] * price / 3600)
        t = to_target[r.info.run_id]
        if "seconds_to_target" in m:
            assert t["USD to target"] == f"{m['seconds_to_target'] * price / 3600:.4f}{mark}"
        else:
            assert t["Train s to target"] == "not reached"
    assert verified == 1
    assert "† marks a figure computed from a price-table entry with `status: unverified`" in section
    for key, row in groups.items():
        g = [r for r in priced if (r.data.tags["platbench.platform"], r.data.params["model"], r.data.params["per_class"]) == key]
        usd = [r.data.metrics["seconds_to_target"] * price_of(r) / 3600 for r in g if "seconds_to_target" in r.data.metrics]
        assert row["Reached"] == f"{len(usd)}/{len(g)}"
        assert row["USD to target"] == (pm(usd) + " †" if usd else "not reached")
    eps = [r for r in runs if r.data.tags.get("platbench.kind") == "endpoint"]
    assert set(endpoints) == {r.info.run_id for r in eps} and len(eps) == 2
    for r in eps:
        m = r.data.metrics
        row = endpoints[r.info.run_id]
        assert row["USD/hour"] == f"{m['endpoint_usd_per_hour']:.4f} †"
        assert row["USD/day"] == f"{m['endpoint_usd_per_day']:,.2f} †" == f"{m['endpoint_usd_per_hour'] * 24:,.2f} †"
        assert row["USD/month"] == f"{m['endpoint_usd_per_month']:,.2f} †"
        assert row["USD/year"] == f"{m['endpoint_usd_per_year']:,.2f} †"
        per_million = m["endpoint_usd_per_hour"] / (m["load_requests_per_s"] * 3600) * 1e6
        assert row["USD per 1M requests (measured req/s)"] == f"{per_million:,.2f} †"
        assert "training list price stands in" in row["Price note"] and row["Price table"] == "unverified"


def price_of(run) -> float:
    return sum(float(p) * int(n) for p, n in re.findall(r" ([0-9.]+)/h ×(\d+)", run.data.tags["platbench.price_source"]))


@FIXTURE_GROUP
def test_failed_runs_stay_out_of_the_figures(fixture_report):
    out, uri, _ = fixture_report
    _, runs = fixture_runs(uri)
    failed = [r.info.run_id for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 2
    page = parse_html(out / "index.html")
    for fid in ("fig-time-accuracy", "fig-ablation", "fig-pareto", "fig-phases", "fig-cost"):
        assert not set(failed) & set(page.figures[fid]["runs"]), fid
    assert set(failed) <= set(page.figures["fig-transfer"]["runs"])  # their upload happened: it counts
    md = (out / "report.md").read_text()
    rows = {row["Run"]: row for row in md_tables(md_section(md, "runs"))[0]}
    assert all(rows[f]["Status"] == "failed" for f in failed)


@FIXTURE_GROUP
def test_usability_tables_are_the_scorecards_with_published_rows_attributed(fixture_report):
    out, _, _ = fixture_report
    from platforms.scorecard import loader, table as table_mod
    from platforms.scorecard.loader import Project

    project = Project(Path(__file__).resolve().parent.parent)
    platforms = loader.registered_platforms()
    got = loader.load_all(project, None, platforms)
    md = (out / "report.md").read_text()
    usability, devex = md_tables(md_section(md, "usability"))[:2]
    for which, shown in (("usability", usability), ("developer_experience", devex)):
        scored = got.rubric if which == "usability" else got.rubric.developer_experience
        expected = table_mod.build(got.rubric, got.records, platforms, got.published, got.placeholders, which)
        assert [r["Platform"].strip("*") for r in shown] == [row.label() for row in expected]
        for row, cells in zip(expected, shown):
            first = cells[scored.criteria[0].header]
            if row.kind == "recorded":
                assert first == row.card.scores[0].cell() and cells["Source"].startswith("recorded: scenarios/")
            elif row.kind == table_mod.PUBLISHED:
                # a published row says so in its name and its source, names the study, and its total is only the
                # study's own (issue 25: none computed here)
                assert cells["Platform"].startswith("*") and "(published)" in cells["Platform"]
                assert cells["Source"].startswith("**published** by ")
                assert cells["Total"] == (str(row.ratings.total) if row.ratings.total is not None else "not published")
                assert first == str(row.ratings.ratings[scored.criteria[0].id])
            elif row.kind == table_mod.NOT_RECORDED:
                assert first == table_mod.NOT_RECORDED
    # every platform of both studies has a row in each table, retired ones with their date
    names = {r["Platform"] for r in usability}
    for entry in got.published.platforms:
        assert any(entry.name in n for n in names), entry.name
    floyd = next(r for r in usability if r["Platform"] == "Floydhub")
    assert floyd["Status"].startswith("retired since 2021-08 [s") and floyd["Source"] == "retired: cannot be recorded"
    neuro = next(r for r in usability if r["Platform"] == "*Neuro (published)*")
    assert [neuro[c.header] for c in got.rubric.criteria] == ["1", "2", "2", "3", "3", "3"]
    assert neuro["Total"] == "not published"
    section = md_section(md, "usability")
    assert "https://github.com/neuromation/platform-benchmark" in section
    assert "https://www.floydhub.com/shutdown" in section  # statuses sourced


# ------------------------------------------------------------------------------------------ statistics in the report
@FIXTURE_GROUP
def test_latency_is_tested_one_median_per_run_and_too_few_runs_call_nothing(fixture_report, tmp_path):
    """Every request of vertex is about twice as slow as sagemaker's: pooled as independent observations
    the requests would "prove" it; three runs per platform cannot, and the report says so, with n and
    the runs needed."""
    from scipy import stats

    out, uri, _ = fixture_report
    c, runs = fixture_runs(uri)
    serving = [r for r in runs if r.data.tags.get("platbench.kind") in ("load", "endpoint")]
    pooled: dict[str, list] = {}
    medians: dict[str, float] = {}
    counts = {}
    for r in serving:
        name = "endpoint.json" if r.data.tags["platbench.kind"] == "endpoint" else "load.json"
        doc = json.loads(Path(c.download_artifacts(r.info.run_id, name, str(tmp_path))).read_text())
        samples = (doc["load"] if name == "endpoint.json" else doc)["samples"]
        ok = [x for x, e in zip(samples["latency_ms"], samples["error"]) if e is None]
        counts[r.info.run_id] = len(ok)
        medians[r.info.run_id] = float(np.median(ok))
        pooled.setdefault(r.data.tags["platbench.platform"], []).extend(ok)
    assert stats.kruskal(pooled["sagemaker"], pooled["vertex"]).pvalue < 1e-10  # what pooling would have said
    md = (out / "report.md").read_text()
    section = md_section(md, "latency")
    rows = {row["Run"]: row for row in md_tables(section)[0]}
    assert {rid: int(row["Samples drawn"]) for rid, row in rows.items()} == counts
    assert {rid: row["Run median ms (tested)"] for rid, row in rows.items()} == {
        rid: f"{v:.2f}" for rid, v in medians.items()}
    line = next(ln for ln in section.splitlines() if ln.startswith("> request latency"))
    assert "one median per run" in line and "sagemaker n=3, vertex n=3" in line
    assert "too few runs to call any difference" in line and "4 runs per group are needed" in line
    assert "higher than" not in line
    page = parse_html(out / "index.html")
    assert set(page.figures["fig-latency"]["runs"]) == {r.info.run_id for r in serving}
    html_text = (out / "index.html").read_text()
    assert "too few runs to call any difference (sagemaker n=3, vertex n=3)" in html_text


@FIXTURE_GROUP
def test_training_figures_with_three_seeds_call_nothing_and_say_how_many_are_needed(fixture_report):
    out, _, _ = fixture_report
    md = (out / "report.md").read_text()
    tests = md_tables(md_section(md, "time-accuracy"))[1]
    assert len(tests) == 12  # 2 models × 2 sizes × 3 figures
    for row in tests:
        assert row["Runs"] == "sagemaker 3, vertex 3" and row["Test"] == "exact Mann–Whitney"
        assert row["Finding"] == "too few runs to call any difference; 4 per group needed"
        assert float(row["p"]) >= 0.1  # the smallest p two groups of 3 allow
    assert "two platforms need 4 runs each, three need 5" in md_section(md, "summary")


@FIXTURE_GROUP
def test_runs_the_compliance_check_failed_are_in_no_figure(fixture_report):
    out, uri, _ = fixture_report
    _, everything = fixture_runs(uri, checked_out=True)
    out_ids = {r.info.run_id: r for r in everything if r.data.tags.get("platbench.check") == "failed"}
    assert len(out_ids) == 2
    page = parse_html(out / "index.html")
    for fid, fig in page.figures.items():
        assert not set(out_ids) & set(fig["runs"]), fid
    for tid, rows in page.tables.items():
        if tid != "runs-excluded":
            assert not any(set(runs.split()) & set(out_ids) for _, runs in rows), tid
    md = (out / "report.md").read_text()
    summary = md_section(md, "summary")
    assert "2 run(s) left out of every figure and test because the compliance check failed" in summary
    for rid, r in out_ids.items():
        assert f"`{rid}`" in summary
    assert "trained on the test split" in summary and "no reason given" in summary
    excluded = {row["Run"]: row for row in html_rows(page, "runs-excluded")}
    assert set(excluded) == set(out_ids)
    # their outlying figures (accuracy 0.99, upload 100 s/MB, 1000 USD) change nothing shown
    assert "0.9900" not in md_section(md, "time-accuracy") and "1000.0000" not in md_section(md, "cost")


@FIXTURE_GROUP
def test_plain_and_evaluated_throughput_are_both_shown(fixture_report):
    out, uri, _ = fixture_report
    _, runs = fixture_runs(uri)
    md = (out / "report.md").read_text()
    rows = {row["Run"]: row for row in md_tables(md_section(md, "runs"))[0]}
    training = [r for r in runs if r.info.status == "FINISHED" and "final_test_accuracy" in r.data.metrics]
    old = 0
    for r in training:
        m, row = r.data.metrics, rows[r.info.run_id]
        assert row[EVALUATED] == f"{speed(m, 'evaluated'):.1f}"
        assert row[PLAIN] == ("–" if speed(m, "plain") is None else f"{speed(m, 'plain'):.1f}")
        old += "throughput_images_per_s" in m
    assert old == 4  # runs from before the split: their one figure is shown as evaluated, plain left empty
    pareto = md_section(md, "pareto")
    assert "ms/image (plain model)" in pareto and "ms/image (as evaluated, with TTA)" in pareto


def test_no_store_is_a_one_line_error_and_creates_nothing(tmp_path):
    from stand_in.cli import platbench_here
    from conftest import assert_one_line_error

    # in this process (tests/stand_in/cli.py): `report` runs through the real entry point in local_report
    proc = platbench_here("report", "--out", "rep", cwd=tmp_path)
    assert_one_line_error(proc)
    assert "no MLflow store here" in proc.stderr and list(tmp_path.iterdir()) == []


def test_alpha_outside_zero_one_is_a_user_error(tmp_path):
    from platforms.errors import UserError
    from platforms.report import build

    with pytest.raises(UserError, match="--alpha must be between 0 and 1"):
        build(tmp_path / "rep", alpha=1.5)
    assert list(tmp_path.iterdir()) == []
