"""memreport --html (issue 16): the page holds one element per region of `vmmap`, in order, one
per chunk of `heapchunks` and per mmapped chunk (under the cap) whose bytes per state add up to
heapchunks' totals, each with `chunk`'s facts as its tooltip, heapstat's numbers (its tables and
its --json document), one row per thread of `threadstacks`; the same on a core and through
gdbserver; and a real browser (headless Chromium, Debian's package) loads it with no console
error, runs its script, zooms it and draws it (a screenshot is saved)."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from tests.harness import ROOT, Gdb, assert_clean, demo, gdbserver_start

pytestmark = pytest.mark.gdb
SHOT = os.path.join(ROOT, "tests", ".cache", "memreport.png")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.regions, self.chunks, self.tips, self.threads = [], [], [], 0
        self.stat_rows, self.heapstat, self._in = [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if "region" in cls:
            self.regions.append((int(a["data-start"]), int(a["data-end"]), a["data-kind"]))
        elif "chunk" in cls:
            self.chunks.append((a["data-state"], int(a["data-size"])))
            self.tips.append(a["title"])
        elif "thread" in cls:
            self.threads += 1
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._in = "td"
        elif tag == "script" and a.get("id") == "heapstat-json":
            self._in = "json"

    def handle_endtag(self, tag):
        if tag == "tr" and getattr(self, "_row", None):
            self.stat_rows.append(self._row)
        self._in = None if tag in ("td", "script") else self._in

    def handle_data(self, data):
        if self._in == "td":
            self._row.append(data)
        elif self._in == "json":
            self.heapstat = json.loads(data)


def make_report(gdb, path):
    """memreport --html PATH at this stop, parsed, with the tables it must add up to."""
    out = gdb.cmd(f"memreport --html {path}", timeout=180)
    # gdb's own warnings may come first (gdb 18 on a core: "Section `.reg-xstate/N' ... too small")
    out = "\n".join(line for line in out.splitlines() if not line.startswith("warning: "))
    assert out.startswith("memreport: wrote") and "(no heap" not in out, out
    facts = {
        "vmmap": gdb.json("vmmap --json"),
        "heapchunks": gdb.json("heapchunks --json", timeout=120),
        "threadstacks": gdb.json("threadstacks --json"),
        "heapstat": gdb.json("heapstat --json", timeout=120),
    }
    page = _Page()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    page.feed(text)
    # `chunk` itself on a free chunk the page drew, to compare with its tooltip
    tip = next(t for (st, _), t in zip(page.chunks, page.tips) if st in ("smallbin", "unsorted", "tcache"))
    facts["chunk"] = (tip, gdb.cmd(f"chunk {tip.split()[1]}"))
    assert_clean("".join(gdb.transcript))
    return path, text, page, facts


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("memreport") / "report.html")
    gdb = Gdb(demo("malloc_sizes"))
    try:
        gdb.run_to("heap")
        got = make_report(gdb, path)
        core = str(tmp_path_factory.mktemp("memreport") / "core")
        gdb.cmd(f"gcore {core}", timeout=120)
    finally:
        gdb.close()
    return got + (core,)


def check_adds_up(report):
    path, text, page, facts = report[:4]
    regions = [(r["start"], r["end"], r["kind"]) for r in facts["vmmap"]["regions"]]
    assert page.regions == regions
    doc = facts["heapchunks"]
    arenas = doc["arenas"]
    assert doc["mmapped"], "the demo has mmapped chunks: their strip is checked too"
    assert len(page.chunks) == sum(len(a["chunks"]) for a in arenas) + len(doc["mmapped"])
    mine, theirs = {}, {}
    for state, size in page.chunks:
        mine[state] = mine.get(state, 0) + size
    for a in arenas:
        for state, t in a["totals"].items():
            theirs[state] = theirs.get(state, 0) + t["bytes"]
    theirs["mmapped"] = sum(m["size"] for m in doc["mmapped"])
    assert mine == theirs
    # each tooltip is `chunk`'s own lines for that chunk (the header and neighbours left out)
    for (state, _), tip in zip(page.chunks, page.tips):
        assert tip.startswith("chunk 0x") and f"  state       {state}" in tip, tip
    tip, own = facts["chunk"]
    lines = [ln.rstrip() for ln in own.splitlines()]
    assert all(ln in lines for ln in tip.splitlines()), (tip, own)
    # heapstat: its document as heapstat --json has it, and its tables' counts
    hs = facts["heapstat"]
    assert page.heapstat is not None
    for key in ("arenas", "mmapped", "total", "trim_reclaimable"):
        assert page.heapstat[key] == hs[key], key
    counts = [(r[0], int(r[1].replace(",", ""))) for r in page.stat_rows if len(r) == 4 and r[1][0].isdigit()]
    rows = ("used", "tcache", "fastbin", "unsorted", "smallbin", "largebin", "top", "reserved")
    want = [(k, a[k]["count"]) for a in hs["arenas"] for k in rows if k == "used" or a[k]["count"]]
    assert sorted(counts) == sorted(want)
    assert page.threads == len(facts["threadstacks"]["threads"])
    assert "http://" not in text and "https://" not in text and "src=" not in text  # self-contained


def test_page_adds_up_to_the_tables(report):
    check_adds_up(report)


def test_page_from_a_core(report, tmp_path):
    """A gcore of the stop: the page adds up to the core's own tables (a core holds no vvar),
    its heaps are the live page's chunk for chunk, heapstat's resident bytes unknown there."""
    g = Gdb(demo("malloc_sizes"))
    try:
        g.cmd(f"core-file {report[4]}", timeout=120)
        got = make_report(g, str(tmp_path / "core.html"))
    finally:
        g.close()
    check_adds_up(got)
    assert got[2].chunks == report[2].chunks
    assert got[2].heapstat["total"]["resident"] is None


def test_page_through_gdbserver(demos, tmp_path):
    server, port = gdbserver_start([demo("malloc_sizes")])
    g = Gdb(demo("malloc_sizes"))
    try:
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        g.cmd("break gdbext_stop")
        assert '"heap"' in g.cmd("continue", timeout=60)
        got = make_report(g, str(tmp_path / "remote.html"))
    finally:
        g.close()
        server.kill()
        server.wait()
    check_adds_up(got)


def _chromium():
    """Headless Chromium's command line, or skip saying why."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("no chromium to load the page in; install Debian's chromium (install.sh --deps)")
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            "--window-size=1280,1600"]


def _load(base, url):
    """The DOM once the page's script has run, with no console error."""
    got = subprocess.run(base + ["--virtual-time-budget=2000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=180)
    assert 'data-ready="1"' in got.stdout, got.stderr[-3000:]  # the script ran to its end
    errors = [ln for ln in got.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not errors, errors
    return got.stdout


def test_chromium_loads_it_without_errors(report):
    path = report[0]
    base = _chromium()
    _load(base, "file://" + path)
    # the zoom: #zoom=8 widens every strip to eight times the page
    zoomed = _load(base, "file://" + path + "#zoom=8")
    assert 'data-zoom="8"' in zoomed
    strips = re.findall(r'<div class="strip"[^>]*>', zoomed)
    assert strips and all("width: 800%" in s for s in strips), strips[:3]
    os.makedirs(os.path.dirname(SHOT), exist_ok=True)
    if os.path.exists(SHOT):
        os.unlink(SHOT)
    subprocess.run(base + [f"--screenshot={SHOT}", "file://" + path], capture_output=True, timeout=120)
    assert os.path.getsize(SHOT) > 10000


def test_a_million_chunks_in_chromium(tmp_path):
    """A heap of a million chunks: the page is cells, not a million elements; Chromium loads it,
    and its zoom draws the chunks of a range from the page's chunk data: as many as the model
    has there, in well under a second."""
    from tests.unit.test_memreport_view import View, million_chunks

    from gdbext.views import memreport

    base = _chromium()
    state = million_chunks()
    page = tmp_path / "million.html"
    page.write_text(memreport.html([], View(state), []), encoding="utf-8")
    seg = state.arenas[0].heaps[0]
    lo, hi = seg.addrs[500_000], seg.addrs[500_000] + 0x1000
    want = sum(1 for i in range(499_000, 501_000) if seg.addrs[i] < hi and seg.chunk_end(i) > lo)
    dom = _load(base, f"file://{page}#heap=0&from={lo:#x}&to={hi:#x}")
    assert dom.count("<span") < 5 * memreport.CELLS
    view = re.search(r'<div class="zoomview"[^>]*>', dom).group(0)
    assert "hidden" not in view, view
    assert f'data-visible="{want}"' in view and f'data-lo="{lo:#x}"' in view, (want, view)
    assert int(re.search(r'data-ms="(\d+)"', view).group(1)) < 1000, view
    whole = _load(base, f"file://{page}#heap=0&from={seg.start:#x}&to={seg.end:#x}")
    view = re.search(r'<div class="zoomview"[^>]*>', whole).group(0)
    assert 'data-visible="1000000"' in view, view


def test_page_without_libc_symbols(demos, tmp_path):
    """Without libc's debug symbols (anchors found by their shape) the page adds up the same."""
    g = Gdb(demo("malloc_sizes"), extra_init=("set debug-file-directory /nonexistent",))
    try:
        g.run_to("heap")
        got = make_report(g, str(tmp_path / "nosymbols.html"))
    finally:
        g.close()
    check_adds_up(got)


def test_json_says_what_was_written(demos, tmp_path):
    """memreport --json, as every command takes it: the file, its size on disk, and what the
    page could not hold (null here)."""
    g = Gdb(demo("malloc_sizes"))
    try:
        g.run_to("heap")
        path = tmp_path / "r.html"
        doc = g.json(f"memreport --html {path} --json", timeout=180)
    finally:
        g.close()
    assert set(doc) == {"command", "schema", "target", "file", "bytes", "missing"}, doc
    assert doc["command"] == "memreport" and doc["target"]["pid"] > 0
    assert doc["file"] == str(path) and doc["bytes"] == os.path.getsize(path) and doc["missing"] is None
