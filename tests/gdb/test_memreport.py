"""memreport --html (issue 16): the page holds one element per region of `vmmap`, in order, one
per chunk of `heapchunks` (under the cap) whose bytes per state add up to heapchunks' totals, one
row per thread of `threadstacks`; and a real browser (headless Chromium, Debian's package)
loads it with no console error, runs its script and draws it (a screenshot is saved)."""

import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from tests.harness import ROOT, Gdb, demo

pytestmark = pytest.mark.gdb
SHOT = os.path.join(ROOT, "tests", ".cache", "memreport.png")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.regions, self.chunks, self.threads = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if "region" in cls:
            self.regions.append((int(a["data-start"]), int(a["data-end"]), a["data-kind"]))
        elif "chunk" in cls:
            self.chunks.append((a["data-state"], int(a["data-size"])))
        elif "thread" in cls:
            self.threads += 1


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("memreport") / "report.html")
    gdb = Gdb(demo("malloc_sizes"))
    try:
        gdb.run_to("heap")
        out = gdb.cmd(f"memreport --html {path}", timeout=120)
        assert out.startswith("memreport: wrote"), out
        facts = {
            "vmmap": gdb.json("vmmap --json"),
            "heapchunks": gdb.json("heapchunks --json", timeout=120),
            "threadstacks": gdb.json("threadstacks --json"),
        }
    finally:
        gdb.close()
    page = _Page()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    page.feed(text)
    return path, text, page, facts


def test_page_adds_up_to_the_tables(report):
    path, text, page, facts = report
    regions = [(r["start"], r["end"], r["kind"]) for r in facts["vmmap"]["regions"]]
    assert page.regions == regions
    arenas = facts["heapchunks"]["arenas"]
    assert len(page.chunks) == sum(len(a["chunks"]) for a in arenas)
    mine, theirs = {}, {}
    for state, size in page.chunks:
        mine[state] = mine.get(state, 0) + size
    for a in arenas:
        for state, t in a["totals"].items():
            theirs[state] = theirs.get(state, 0) + t["bytes"]
    assert mine == theirs
    assert page.threads == len(facts["threadstacks"]["threads"])
    assert "http://" not in text and "https://" not in text and "src=" not in text  # self-contained


def test_chromium_loads_it_without_errors(report):
    path = report[0]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("no chromium to load the page in; install Debian's chromium (install.sh --deps)")
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            "--window-size=1280,1600"]
    got = subprocess.run(base + ["--virtual-time-budget=2000", "--dump-dom", "file://" + path],
                         capture_output=True, text=True, timeout=120)
    assert 'data-ready="1"' in got.stdout, got.stderr[-3000:]  # the script ran to its end
    errors = [ln for ln in got.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not errors, errors
    os.makedirs(os.path.dirname(SHOT), exist_ok=True)
    if os.path.exists(SHOT):
        os.unlink(SHOT)
    subprocess.run(base + [f"--screenshot={SHOT}", "file://" + path], capture_output=True, timeout=120)
    assert os.path.getsize(SHOT) > 10000
