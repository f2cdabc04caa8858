"""The studies' published ratings and figures (scenarios/published/studies.yaml): checked against
scoring.yaml and, where the reference copies are on this machine, against the studies themselves; shown
in rows that say "published" and name the study, never as a platbench record; every problem in the file
is one line with file, line and field. Also the "not recorded" placeholders."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_scorecard_cli import cli  # `platbench …` in-process: a UserError is one line and exit 2

from platforms.errors import UserError
from platforms.scorecard import loader, table
from platforms.scorecard.loader import Project, load_all, load_rubric
from platforms.scorecard.published import PUBLISHED_FILE, check_published
from platforms.scorecard.source import Invalid, parse_yaml

REPO = Path(__file__).resolve().parents[1]
STUDIES_TEXT = (REPO / PUBLISHED_FILE).read_text()
RUBRIC = load_rubric(REPO / "scoring.yaml")
REFERENCES = REPO.parent / "shared" / "references"  # the team's copies of the studies (not shipped)
NEURO_COPY = REFERENCES / "neuromation-platform-benchmark-readme.md"
AUTOML_COPY = REFERENCES / "nyckel-automl-image-classification-benchmark-2023.md"


def published():
    return check_published(*parse_yaml(STUDIES_TEXT, PUBLISHED_FILE), RUBRIC)


@pytest.fixture
def root(tmp_path, monkeypatch):
    shutil.copy(REPO / "scoring.yaml", tmp_path / "scoring.yaml")
    shutil.copy(REPO / "Scenario.md", tmp_path / "Scenario.md")
    (tmp_path / "scenarios" / "published").mkdir(parents=True)
    shutil.copy(REPO / PUBLISHED_FILE, tmp_path / PUBLISHED_FILE)
    shutil.copy(REPO / "scenarios" / "local.yaml", tmp_path / "scenarios" / "local.yaml")
    monkeypatch.setattr(loader, "registered_platforms", lambda: ["local", "sagemaker", "vertex"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------------- the repo's file
def test_every_platform_of_both_studies_is_listed_with_a_sourced_status():
    pub = published()
    assert {p.name for p in pub.platforms if "neuromation" in p.studies} == {
        "Neuro", "AWS SageMaker", "Google AI Platform", "Azure AI", "Floydhub", "Paperspace Gradient", "Determined.ai",
        "Databricks"}
    assert {p.name for p in pub.platforms if "nyckel_2023" in p.studies} == {
        "Nyckel", "Hugging Face AutoTrain", "AWS Rekognition Custom Labels", "Google Vertex AI"}
    retired = {p.name: p.status.since for p in pub.platforms if p.status.state == "retired"}
    assert retired == {"Floydhub": "2021-08", "Paperspace Gradient": "2024-05-15", "Determined.ai": "2025",
                       "Google AI Platform": "2025-01-31", "Hugging Face AutoTrain": "2023-11"}
    for p in pub.platforms:
        assert p.status.sources, p.name
    # the dates a source did not pin down say so rather than guess
    for name in ("Floydhub", "Determined.ai", "Paperspace Gradient"):
        assert pub.platform(name).status.unconfirmed, name
    # the AutoML services use the names the service packages register under
    assert {p.platbench for p in pub.platforms if "nyckel_2023" in p.studies} == {
        "nyckel", "autotrain", "rekognition", "vertex_automl"}


@pytest.mark.skipif(not NEURO_COPY.exists(), reason=f"the reference copy {NEURO_COPY} is not on this machine")
def test_published_ratings_match_the_comparison_copy():
    text = NEURO_COPY.read_text()
    table = text[text.index("## Comparison results"):]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] and not set(cells[0]) <= set("-:"):
            rows[cells[0]] = cells[1:]
    pub = published()
    listed = {p.name for p in pub.platforms if "neuromation" in p.studies}
    assert set(rows) == listed  # the copy's eight rows, by the same names
    for name, cells in rows.items():
        r = pub.ratings_of(name, "neuromation")
        if not any(cells):
            assert r is None, f"{name}: blank in the study, so no published ratings"
        else:
            assert [str(r.ratings[c]) for c in RUBRIC.ids] == cells, name
    assert pub.ratings_of("Neuro", "neuromation").ratings == {
        "environment": 1, "data_ingestion": 2, "remote_debugging": 2, "sharing_engineers": 3,
        "sharing_non_engineers": 3, "sharing_data_env": 3}


@pytest.mark.skipif(not AUTOML_COPY.exists(), reason=f"the reference copy {AUTOML_COPY} is not on this machine")
def test_published_scores_and_figures_match_the_automl_copy():
    text = AUTOML_COPY.read_text()
    grade = text[text.index("### Developer experience grade"):text.index("## Pricing")]
    pub = published()
    for r in pub.ratings:
        if r.study != "nyckel_2023":
            continue
        row_name = re.search(r'row "([^"]+)"', r.section)
        row_name = row_name.group(1) if row_name else r.platform
        line = next(ln for ln in grade.splitlines() if ln.startswith(f"| {row_name} "))
        cells = [c.strip() for c in line.strip().strip("|").split("|")][1:]
        assert cells == [str(r.ratings[c]) for c in RUBRIC.developer_experience.ids] + [str(r.total)], r.platform
    assert {r.platform: r.total for r in pub.ratings if r.study == "nyckel_2023"} == {
        "Nyckel": 24, "Hugging Face AutoTrain": 17, "AWS Rekognition Custom Labels": 16, "Google Vertex AI": 12}
    latency = text[text.index("## Latency and Throughput"):text.index("## Developer Experience")]
    pricing = text[text.index("## Pricing"):text.index("## Wrapping up")]
    for f in pub.figures:
        v = f"{f.value:g}"
        if f.metric == "latency_p50_ms":
            assert re.search(rf"\b{re.escape(v)} ms\b", latency), f
        elif f.metric == "seconds_1000_requests_at_10":
            service = {"AWS Rekognition Custom Labels": "AWS Rekognition", "Google Vertex AI": "Google Vertex",
                       "Nyckel": "Nyckel Image Classification"}.get(f.platform, f.platform)
            assert re.search(rf"^\| {re.escape(service)}\s*\|\s*{re.escape(v)}\s*\|", latency, re.M), f
        else:
            service = {"AWS Rekognition Custom Labels": "AWS Rekognition", "Google Vertex AI": "Google Vertex",
                       "Hugging Face AutoTrain": r"Hugging Face AutoTrain\*"}[f.platform]
            assert re.search(rf"^\| {service}\s*\|\s*\${f.value:.2f}|^\| {service}\s*\|\s*\${v}\s*\|", pricing, re.M), f
    assert {(f.platform, f.metric): f.value for f in pub.figures} == {
        ("AWS Rekognition Custom Labels", "latency_p50_ms"): 167, ("Hugging Face AutoTrain", "latency_p50_ms"): 190,
        ("Google Vertex AI", "latency_p50_ms"): 467, ("Nyckel", "latency_p50_ms"): 474,
        ("Hugging Face AutoTrain", "seconds_1000_requests_at_10"): 35.9,
        ("AWS Rekognition Custom Labels", "seconds_1000_requests_at_10"): 45.2,
        ("Nyckel", "seconds_1000_requests_at_10"): 65.4, ("Google Vertex AI", "seconds_1000_requests_at_10"): 95.5,
        ("AWS Rekognition Custom Labels", "endpoint_usd_per_hour"): 4, ("Hugging Face AutoTrain", "endpoint_usd_per_hour"): 0.6,
        ("Google Vertex AI", "endpoint_usd_per_hour"): 1.38}


@pytest.mark.skipif(not AUTOML_COPY.exists(), reason=f"the reference copy {AUTOML_COPY} is not on this machine")
def test_automl_platforms_are_named_as_the_study_named_them():
    """The study's Methodology lists the four services it tested; each row is titled with that name."""
    text = AUTOML_COPY.read_text()
    listed = text[text.index("## Methodology"):text.index("Each ML service was used")]
    for entry in published().platforms:
        if "nyckel_2023" in entry.studies:
            assert f"- [{entry.name}" in listed, entry.name


def test_one_status_per_platform():
    """A study's platform that platbench lists as not measurable (`platbench platforms`) is retired in the studies
    file, and the scenario table says so on every row of it, platbench's own included (issue 25: AutoTrain was
    `live` in one and "retired … not measurable" in the other)."""
    from platforms.core import registry

    pub = published()
    for entry in pub.platforms:
        if entry.platbench in registry.specs() and registry.spec(entry.platbench).not_measurable:
            assert entry.status.state == "retired", entry.name
    assert "retired" in registry.spec("autotrain").not_measurable
    rows = table.build(RUBRIC, [], registry.names(), pub, which="developer_experience")
    autotrain = [r for r in rows if r.platform == "autotrain"]
    assert len(autotrain) == 2 and {table.status_cell(r, {}) for r in autotrain} == {"retired since 2023-11 [s1]"}
    assert table.cells(RUBRIC.developer_experience, autotrain[0], pub)[0] == "retired: cannot be recorded"


# ------------------------------------------------------------------------------------- a bad file
def line_of(needle: str) -> int:
    return STUDIES_TEXT[:STUDIES_TEXT.index(needle)].count("\n") + 1


@pytest.mark.parametrize("old,new,expected", [
    ("    total: 24\n", "    total: 25\n", r"ratings\[1\]\.total: the published total 25 is not the sum of the ratings \(24\)"),
    ("first_invoke: 5, documentation: 4}", "first_invoke: 5, documentation: 6}",
     r"ratings\[1\]\.ratings\.documentation: rating 6 is outside the scale 1–5"),
    ("sharing_data_env: 3}", "sharing_data_env: 3, speed: 2}",
     r"ratings\[0\]\.ratings\.speed: unknown criterion 'speed'; the usability rubric defines"),
    ("first_invoke: 5, documentation: 4}\n    total: 24", "first_invoke: 5}\n    total: 20",
     r"ratings\[1\]\.ratings: no rating for documentation"),
    ("      since: 2021-08\n", "", r"platforms\[4\]\.status: a retired platform needs `since`"),
    ("    published_on: 2023-05-31\n", "", r"studies\.nyckel_2023: no published_on: say why in date_note"),
    ("    studies: [neuromation]\n    status:\n      state: retired\n      since: 2021-08",
     "    studies: [neuromation, floyd_blog]\n    status:\n      state: retired\n      since: 2021-08",
     r"platforms\[4\]\.studies\[1\]: unknown study 'floyd_blog'"),
    ("  - study: neuromation\n    platform: Neuro\n", "  - study: neuromation\n    platform: Nyckel\n",
     r"ratings\[0\]\.platform: 'Nyckel' is not a platform of study 'neuromation'"),
    ("platform: Nyckel, metric: latency_p50_ms, value: 474,", "platform: Nyckel, metric: latency_p50_ms, value: -474,",
     r"figures\[3\]\.value: Input should be greater than or equal to 0"),
    ("platform: Nyckel, metric: seconds_1000_requests_at_10,", "platform: Nyckel, metric: latency_p50_ms,",
     r"figures\[6\]: a second latency_p50_ms for Nyckel"),
    ("      sources: [https://docs.databricks.com/]", "      sources: [docs.databricks.com]",
     r"platforms\[7\]\.status\.sources\[0\]: must be one URL"),
])
def test_bad_studies_file_is_rejected_with_line_and_field(old, new, expected):
    assert old in STUDIES_TEXT, old
    text = STUDIES_TEXT.replace(old, new, 1)
    with pytest.raises(Invalid) as info:
        check_published(*parse_yaml(text, PUBLISHED_FILE), RUBRIC)
    found = [str(p) for p in info.value.problems]
    hits = [p for p in found if re.search(expected, p)]
    assert hits, found
    assert re.match(rf"^{re.escape(PUBLISHED_FILE)}:\d+: ", hits[0])
    if new:
        first_changed = next(i for i, (a, b) in enumerate(zip(STUDIES_TEXT.splitlines(), text.splitlines())) if a != b) + 1
        assert int(hits[0].split(":")[1]) <= first_changed + 1, hits[0]


def test_cli_lists_every_problem_and_writes_nothing(root):
    path = root / PUBLISHED_FILE
    path.write_text(STUDIES_TEXT.replace("    total: 24\n", "    total: 25\n").replace("      since: 2021-08\n", ""))
    code, out, err = cli("scenario", "validate")
    assert code == 2 and "Traceback" not in err
    lines = err.splitlines()
    assert sum(PUBLISHED_FILE in ln for ln in lines) == 2 and lines[-1] == "platbench: error: 2 problems in 1 file"
    for command in (["table", "--output", "t.md"], ["table", "--format", "json", "--output", "t.json"], ["render"]):
        before = (root / "Scenario.md").read_bytes()
        code, _, err = cli("scenario", *command)
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"platbench: error: {PUBLISHED_FILE}:"), command
        assert not (root / "t.md").exists() and not (root / "t.json").exists()
        assert (root / "Scenario.md").read_bytes() == before


# ------------------------------------------------------------------- published ≠ measured, in the table
def test_table_marks_published_rows_and_names_the_study(root):
    code, out, err = cli("scenario", "table", "--rubric", "usability")
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")]
    neuro = next(r for r in rows if "Neuro (published)" in r)
    cells = [c.strip() for c in neuro.strip("|").split("|")]
    assert cells[0] == "_Neuro (published)_" and cells[2] == "**published** by Neuromation [1]"
    # a published row holds only what the study published: Neuromation gave no total, so none is computed
    assert cells[3:] == ["1", "2", "2", "3", "3", "3", "not published"]
    # apolo itself is not recorded: its own row says so, whatever Neuromation published
    apolo = next(r for r in rows if r.startswith("| **apolo"))
    assert "not recorded" in apolo and "14/18" not in apolo
    assert "- [1] Benchmark for platforms comparison (Neuromation, on neu.ro), undated" in out
    assert "<https://github.com/neuromation/platform-benchmark>" in out
    floyd = next(r for r in rows if r.startswith("| **Floydhub**"))
    assert "retired since 2021-08 [s" in floyd and "retired: cannot be recorded" in floyd
    assert "<https://www.floydhub.com/shutdown>" in out

    code, out, _ = cli("scenario", "table", "--rubric", "developer_experience")
    nyckel = next(r for r in out.splitlines() if r.startswith("| _Nyckel (published)_"))
    assert nyckel.rstrip(" |").endswith("| 24")  # the total the study printed, as printed
    code, out, _ = cli("scenario", "table", "--format", "json", "--rubric", "developer_experience")
    doc = json.loads(out)
    assert all(p.get("published") is None for p in doc["platforms"])  # nothing of ours says published
    nyckel = next(p for p in doc["published"] if p["study_platform"] == "Nyckel")
    assert nyckel["published"] is True and nyckel["platform"] == "nyckel"
    assert nyckel["ratings"] == {"uploading_data": 5, "ml_expertise": 5, "first_model": 5, "first_invoke": 5,
                                 "documentation": 4}
    assert nyckel["total"] == 24
    assert nyckel["source"]["published_on"] == "2023-05-31" and "Andrew Tate" in nyckel["source"]["measured_by"]
    assert nyckel["source"]["url"].startswith("https://www.nyckel.com/blog/")
    local = next(p for p in doc["platforms"] if p["platform"] == "local")
    assert local["recorded"] is True and local["record"] == "scenarios/local.yaml"


def test_score_never_shows_published_ratings(root):
    code, out, _ = cli("scenario", "score", "--json")
    assert code == 0
    assert [c["platform"] for c in json.loads(out)] == ["local"]


# ------------------------------------------------------------------------------- not-recorded placeholders
def test_placeholders_are_checked_and_never_scored(root):
    sc = root / "scenarios"
    (sc / "nyckel.yaml").write_text("platform: nyckel\nstatus: not recorded\n")  # not registered yet, but planned
    (sc / "sagemaker.yaml").write_text("platform: sagemaker\nstatus: not recorded\nnotes: nobody yet\n")
    code, out, err = cli("scenario", "validate")
    assert code == 0, err
    assert "ok   scenarios/nyckel.yaml (not recorded)" in out
    got = load_all(Project(root), None, ["local", "sagemaker", "vertex"])
    assert [r.platform for _, r in got.records] == ["local"]
    assert sorted(h.platform for _, h in got.placeholders) == ["nyckel", "sagemaker"]
    code, out, _ = cli("scenario", "table", "--rubric", "usability")
    assert "| **sagemaker (AWS SageMaker)** | live [s" in out and "not recorded (scenarios/sagemaker.yaml)" in out


@pytest.mark.parametrize("text,expected", [
    ("platform: floydhub\nstatus: not recorded\n", "scenarios/x.yaml:1: platform: unknown platform 'floydhub'"),
    ("platform: x\nstatus: recorded\n", "scenarios/x.yaml:2: status: Input should be 'not recorded'"),
    ("platform: x\nstatus: not recorded\nsteps: []\n", "scenarios/x.yaml:3: steps: unknown field"),
])
def test_bad_placeholders(root, text, expected):
    monkey = ["local", "sagemaker", "vertex", "x"]
    (root / "scenarios" / "x.yaml").write_text(text)
    with pytest.raises(UserError) as info:
        load_all(Project(root), None, monkey)
    assert str(info.value).startswith(expected), str(info.value)
