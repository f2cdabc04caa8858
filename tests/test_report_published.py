"""The report's published figures: the AutoML study's latency, time for 1,000 requests at 10 concurrent
and endpoint price, in rows marked published and attributed, beside platbench's own serving runs of the
same service (runs tagged with its platform name), each figure computed from those runs alone."""
from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
from test_report import md_section, md_tables, tracking_uri

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    """A project root with the repo's rubric, scenario and published studies (what the report reads)."""
    root = tmp_path / "project"
    (root / "scenarios" / "published").mkdir(parents=True)
    for name in ("scoring.yaml", "Scenario.md", "scenarios/local.yaml", "scenarios/published/studies.yaml"):
        shutil.copy(REPO / name, root / name)
    return root


SERVICE_LATENCIES = [120.0, 130.0, 140.0, 1000.0]  # the service run's load samples; the last one failed


def service_runs(uri: str, folder: Path) -> None:
    """Runs for the rekognition service: one as `platbench launch rekognition` logs it (kind service, its
    load test's settings and samples in service.json, not in params), load runs as `platbench load` logs
    them, two of the study's shape (1,000 requests, closed loop at 10) and one not (300 at 4), which must
    stay out of the 1,000-at-10 column, and an endpoint run with a price."""
    from platforms.core import tracking
    from platforms.core.tracking import Tag

    with tracking_uri(uri):
        with tracking.tracked_run("rekognition-service", {"per_class": 5, "seed": 0},
                                  {Tag.PLATFORM: "rekognition", Tag.KIND: "service",
                                   Tag.MODEL: "chosen by the service"}) as run:
            run.metrics({"final_test_accuracy": 0.9, "seconds_train": 3600.0, "load_seconds": 47.0,
                         "load_latency_p50_ms": 130.0, "endpoint_usd_per_hour": 4.0})
            doc = {"load": {"settings": {"requests": 1000, "concurrency": 10, "rate": None, "retries": 0},
                            "samples": {"latency_ms": SERVICE_LATENCIES, "error": [None, None, None, "reset"]}}}
            path = folder / "service.json"
            path.write_text(json.dumps(doc))
            run.client.log_artifact(run.run_id, str(path))
            run.tags({Tag.STATUS: "finished"})
            run.end("FINISHED")
        # the last: single invokes without retries, the study's latency protocol (the only run that is)
        for requests, concurrency, seconds, p50 in ((1000, 10, 50.0, 150.0), (1000, 10, 54.0, 152.0), (300, 4, 9.0, 400.0),
                                                    (100, 1, 20.0, 170.0)):
            with tracking.tracked_run("load-rekognition", {"requests": requests, "concurrency": concurrency,
                                                           "retries": 0},
                                      {Tag.PLATFORM: "rekognition", Tag.KIND: "load"}) as run:
                run.metrics({"load_ok": requests, "load_latency_p50_ms": p50, "load_seconds": seconds,
                             "load_requests_per_s": requests / seconds})
                run.tags({Tag.STATUS: "finished"})
                run.end("FINISHED")
        with tracking.tracked_run("endpoint-rekognition", {"requests": 200, "concurrency": 10},
                                  {Tag.PLATFORM: "rekognition", Tag.KIND: "endpoint"}) as run:
            run.metrics({"endpoint_usd_per_hour": 4.0, "load_ok": 200, "load_latency_p50_ms": 160.0})
            run.tags({Tag.STATUS: "finished"})
            run.end("FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One store of service_runs() for the module's tests (they read it, never add to it)."""
    folder = tmp_path_factory.mktemp("published-store")
    uri = f"sqlite:///{folder / 'store.db'}"
    service_runs(uri, folder)
    return uri


def build(out: Path, uri: str, root: Path):
    from platforms.report import build as build_report

    with tracking_uri(uri):
        return build_report(out, root=root)


def test_published_figures_sit_beside_measured_runs_and_are_attributed(tmp_path, project, store):
    written = build(tmp_path / "rep", store, project)
    assert "published" in written.sections
    md = (tmp_path / "rep" / "report.md").read_text()
    section = md_section(md, "published")
    rows = md_tables(section)[0]
    rek = [r for r in rows if r["Platform"] == "rekognition"]
    pub = rek[0]
    # the study's row: its numbers, marked published, the study named and dated, and its source listed
    assert pub["Source"].startswith("**published** [1]: AWS Rekognition Custom Labels, 2023-05-31")
    assert (pub["median request latency, ms"], pub["seconds for 1,000 requests at 10 concurrent"],
            pub["endpoint price, USD per hour"], pub["Runs"]) == ("167", "45.2", "4", "–")
    assert "[1] Image Classification Benchmark: Google, AWS, Hugging Face & Nyckel, 2023-05-31" in section
    assert "<https://www.nyckel.com/blog/image-classification-benchmark-google-vs-aws-vs-hugging-face-vs-nyckel/>" in section
    assert len(rek) == 3
    ours, apart = rek[1], rek[2]
    # ours, as the study measured: the latency only from the single-invoke run (the study timed single invokes,
    # failures counted: no retries); the 1,000-at-10 time only from the three runs of that shape (the service
    # run's shape read from its load report, the load runs' from their params); the price from the two priced runs
    assert ours["Source"] == "measured by platbench as the study measured" and ours["Runs"] == "5"
    assert ours["median request latency, ms"] == "170.00"
    study = [47.0, 50.0, 54.0]
    assert ours["seconds for 1,000 requests at 10 concurrent"] == f"{statistics.mean(study):.2f} ± {statistics.stdev(study):.2f}"
    assert ours["endpoint price, USD per hour"] == "4.0000 ± 0.0000"
    # every other latency (one median per run: the service run's from its successful samples, the others from
    # their logged p50) in a row of its own that says how its load test differs, never beside the study's 167
    medians = [statistics.median(SERVICE_LATENCIES[:3]), 150.0, 152.0, 400.0, 160.0]
    assert apart["median request latency, ms"] == f"{statistics.mean(medians):.2f} ± {statistics.stdev(medians):.2f}"
    assert apart["Source"] == ("measured by platbench, not comparable: concurrency 10 (3 runs); concurrency 4 (1 run); "
                               "concurrency 10, retries not recorded (1 run) (the study: single invokes, one at a time, "
                               "no retries)")
    assert apart["Runs"] == "5" and apart["seconds for 1,000 requests at 10 concurrent"] == "–"
    # the service run is a training run too (accuracy, time), listed once in the runs table
    training_rows, serving_rows = md_tables(md_section(md, "runs"))[:2]
    assert [r["Model"] for r in training_rows if r["Platform"] == "rekognition"] == ["chosen by the service"]
    assert sorted(r["Kind"] for r in serving_rows if r["Platform"] == "rekognition") == ["endpoint", "load", "load", "load",
                                                                                          "load"]
    # services with no runs say so instead of showing a number
    nyckel = [r for r in rows if r["Platform"] == "nyckel"]
    assert nyckel[1]["Source"] == "measured: no runs yet" and nyckel[1]["Runs"] == "0"
    # one status everywhere: the service `platbench platforms` lists as not measurable is not "no runs yet"
    autotrain = [r for r in rows if r["Platform"] == "autotrain"]
    assert autotrain[1]["Source"] == "measured: not measurable (`platbench platforms`)" and autotrain[1]["Runs"] == "0"
    # the html has the same table, the measured row citing its runs
    html = (tmp_path / "rep" / "index.html").read_text()
    assert 'id="published-figures"' in html and "published" in html


def sections(store: str, project):
    """The published and usability sections alone (no figures drawn), from the store with service runs."""
    from platforms.report import data
    from platforms.report.sections import Para, Report

    with tracking_uri(store):
        rep = Report(data.gather(None), root=project)
    return {s.id: " ".join(b.text for b in s.blocks if isinstance(b, Para)) for s in (rep.published(), rep.usability())}


def test_without_a_studies_file_the_section_says_so(store, project):
    (project / "scenarios" / "published" / "studies.yaml").unlink()
    text = sections(store, project)
    assert "No published figures: the project keeps no scenarios/published/studies.yaml" in text["published"]
    assert "published by" not in text["usability"]


def test_a_broken_studies_file_is_one_line_in_both_sections(store, project):
    path = project / "scenarios" / "published" / "studies.yaml"
    path.write_text(path.read_text().replace("    total: 24\n", "    total: 25\n"))
    text = sections(store, project)
    for sid in ("published", "usability"):
        assert re.search(r"scenarios/published/studies.yaml:\d+: ratings\[1\]\.total: the published total 25",
                         text[sid]), sid
