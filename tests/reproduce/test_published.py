"""Every figure a study protocol (platforms/reproduce/studies/) quotes is the study's own: checked against the
team's copies of the five studies (../shared/references/, not shipped), table by table where the study has one."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from platforms.reproduce import protocol

REPO = Path(__file__).resolve().parents[2]
REFERENCES = REPO.parent / "shared" / "references"
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")

needs_copies = pytest.mark.skipif(not REFERENCES.is_dir(), reason=f"the reference copies {REFERENCES} are not here")


def numbers(text: str) -> set[float]:
    return {float(m.group().replace(",", "")) for m in NUMBER.finditer(text)}


def copy_of(proto) -> str:
    name = Path(proto.reference).name
    return (REFERENCES / name).read_text()


def test_every_study_loads_and_names_its_copy():
    assert protocol.names() == ["aws-azure", "jumpstart", "neuromation", "nyckel", "roboflow"]
    for name in protocol.names():
        proto = protocol.load(name)
        assert proto.reference.startswith("../shared/references/")
        # a figure platbench cannot measure says why; a measurable one names where in the study it stands
        for f in proto.figures:
            assert f.section and (f.measurable or f.why_not)


@needs_copies
@pytest.mark.parametrize("name", ["aws-azure", "jumpstart", "nyckel", "roboflow"])
def test_every_figure_is_a_number_of_its_study(name):
    proto = protocol.load(name)
    found = numbers(copy_of(proto))
    for f in proto.figures:
        for v in (f.value, f.spread, f.upper):
            assert v is None or v in found, (f.quantity, f.platform, v)


@needs_copies
def test_jumpstart_pareto_table_is_the_studys_row_for_row():
    proto = protocol.load("jumpstart")
    lines = copy_of(proto).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Model Name Number of Parameters"))
    table = {}
    for line in lines[start + 1:start + 22]:
        name, params, acc, top5, ips, spe = line.split()
        table[name] = {"parameters_millions": float(params.rstrip("M")), "test_accuracy": float(acc.rstrip("%")),
                       "test_top5_accuracy": float(top5.rstrip("%")), "test_images_per_s": float(ips),
                       "seconds_per_epoch": float(spe)}
    ours: dict[str, dict[str, float]] = {}
    for f in proto.figures:
        ours.setdefault(f.model, {})[f.quantity] = f.value
    assert ours == table and len(table) == 21
    assert list(ours) == list(table)  # in the study's order (throughput up, accuracy down)


@needs_copies
def test_aws_azure_tables_2_to_7_are_the_papers():
    proto = protocol.load("aws-azure")
    text = copy_of(proto)

    def table(n: int) -> str:
        return text[text.index(f"Table {n}. "):text.index(f"Table {n + 1}. ")]

    for n, quantity in ((2, "download_s_per_mb"), (3, "upload_s_per_mb"), (4, "inference_s_per_mb"),
                        (5, "throughput_mb_per_s")):
        cells = re.findall(r"(AWS|Azure)\s+([\d.]+) ± ([\d.]+)\s+([\d.]+)", table(n))
        assert len(cells) == 2, n
        for platform, mean, sd, median in cells:
            figs = {f.stat: f for f in proto.figures if f.quantity == quantity and f.platform == platform}
            assert (figs["mean"].value, figs["mean"].spread, figs["median"].value) == (float(mean), float(sd), float(median))
            assert figs["mean"].section.startswith(f"Table {n}")
    aws, azure = table(6), table(7)
    by = {(f.quantity, f.platform): f for f in proto.figures}
    assert "USD 0.526" in aws and by[("endpoint_usd_per_hour", "AWS")].value == 0.526
    assert "USD 12.8736" in aws and by[("deployment_usd_per_day", "AWS")].value == 12.8736
    assert "USD 4.692–USD 46.92" in azure
    assert (by[("deployment_usd_per_day", "Azure")].value, by[("deployment_usd_per_day", "Azure")].upper) == (4.692, 46.92)
    # the paper's H per figure, each on its own quantity (Sections 4.1–4.4), each in the text
    kw = {f.quantity: f.value for f in proto.figures if f.quantity.startswith("kruskal_wallis_h")}
    assert kw == {"kruskal_wallis_h_download": 93.754, "kruskal_wallis_h_upload": 171.753,
                  "kruskal_wallis_h_inference": 71.019, "kruskal_wallis_h_throughput": 167.253}
    for h in kw.values():
        assert f"statistic of {h:g}" in text


@needs_copies
def test_nyckel_tables_and_cost_horizon_are_the_studys():
    proto = protocol.load("nyckel")
    text = copy_of(proto)
    rows = dict(re.findall(r"^\| ([A-Za-z][^|]*?)\s+\| ([\d.]+)\s+\|$", text, re.M))
    names = {"Hugging Face AutoTrain": "Hugging Face AutoTrain", "AWS Rekognition Custom Labels": "AWS Rekognition",
             "Nyckel": "Nyckel Image Classification", "Google Vertex AI": "Google Vertex"}
    for f in proto.figures:
        if f.quantity == "seconds_1000_requests_at_10":
            assert float(rows[names[f.platform]]) == f.value
    # the study's month: $4/h → $2,922 (730.5 h), beside platbench's 730 h
    assert "| AWS Rekognition         | $4            | $96          | $2,922         | $35,040       |" in text
    assert proto.cost_horizon.hours["month"] == 2922 / 4
    assert f"median response time of {167} ms" in text
