"""index.html in a real browser: headless Chromium (Debian's `chromium`) opens the report with no
network (a dead proxy for everything) and the page's own self-check reports which sections and figures
rendered; a screenshot must show more than a blank page.

Skipped, saying why, when no chromium is installed: CI installs Debian's package (`apt-get install -y
chromium`). Flags: /work/shared/MACHINE-NOTES.md ("Chromium for a real-browser check")."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from stand_in.cli import platbench_here
from test_report import ALL_FIGURES, FIXTURE_GROUP, SECTIONS, fixture_report  # noqa: F401 - fixture used below
from _sweep import SWEEP_NAME, swept

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed: `apt-get install -y chromium` (Debian) to run "
                             "the real-browser check of index.html")


def chromium(args: list[str], profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
             "--hide-scrollbars"]
    env = {k: v for k, v in os.environ.items() if k not in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout, env=env)


class BodyAttr(HTMLParser):
    def __init__(self):
        super().__init__()
        self.check = None

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.check = dict(attrs).get("data-selfcheck")


def self_check(page: Path, profile: Path) -> dict:
    """Open the page with no network; return what its own script found rendered."""
    proc = chromium(["--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()], profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parser = BodyAttr()
    parser.feed(proc.stdout)
    assert parser.check, "the page's self-check did not run: " + proc.stdout[:500]
    return json.loads(parser.check)


def assert_rendered(check: dict, figures: list[str]) -> None:
    assert [s["id"] for s in check["sections"]] == SECTIONS
    assert all(s["height"] > 40 for s in check["sections"]), check["sections"]
    found = {f["id"]: f for f in check["figures"]}
    assert list(found) == figures
    for f in found.values():
        assert f["loaded"] and f["naturalWidth"] > 200 and f["naturalHeight"] > 150, f
        assert f["width"] > 200 and f["height"] > 100, f  # laid out, not collapsed
    assert check["external"] == 0


@FIXTURE_GROUP
def test_every_section_and_figure_renders_offline(fixture_report, tmp_path):
    out, _, _ = fixture_report
    assert_rendered(self_check(out / "index.html", tmp_path / "profile"), ALL_FIGURES)
    html_text = (out / "index.html").read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:|#)", html_text)  # nothing loaded from elsewhere


def test_the_local_sweep_report_renders(tmp_path_factory, digits_data, tmp_path):
    cwd = swept(tmp_path_factory, digits_data)
    # in this process (tests/stand_in/cli.py): `platbench report`'s subprocess form is test_report's local_report
    proc = platbench_here("report", "--sweep", SWEEP_NAME, "--out", "rep-browser", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    check = self_check(cwd / "rep-browser" / "index.html", tmp_path / "profile")
    assert_rendered(check, ["fig-time-accuracy", "fig-ablation", "fig-pareto", "fig-phases"])


@FIXTURE_GROUP
def test_screenshot_is_not_blank(fixture_report, tmp_path):
    from PIL import Image

    out, _, _ = fixture_report
    shot = tmp_path / "shot.png"
    proc = chromium(["--window-size=1280,2400", f"--screenshot={shot}", (out / "index.html").resolve().as_uri()],
                    tmp_path / "profile")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = Image.open(shot).convert("L")
    colours = img.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # text, tables and plots, not one flat colour
