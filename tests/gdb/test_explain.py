"""--explain on vmmap, heapchunks, bins and threadstacks: one paragraph per kind or state that
the output shows (and none for one it does not), quoting counts that are those of the
command's own --json document."""

import re
from collections import Counter

import pytest

from tests.harness import Gdb, assert_clean, demo

HEAD = re.compile(r"^([a-z_.-]+) \((\d+) (region|chunk)s?, [^)]*\):", re.M)


@pytest.fixture(scope="module")
def stop(demos):
    g = Gdb(demo("malloc_sizes"), ("basic",), extra_init=("set print thread-events off",))
    try:
        g.run_to("heap")
        yield g
    finally:
        g.close()


def explained(text: str) -> dict:
    part = text[text.index("explained:"):]
    return {m.group(1): int(m.group(2)) for m in HEAD.finditer(part)}


def test_vmmap_explain(stop):
    regions = stop.json("vmmap --json")["regions"]
    text = stop.cmd("vmmap --explain")
    assert explained(text) == dict(Counter(r["kind"] for r in regions))
    assert "explained:" in stop.cmd("vmmap --map --explain")
    assert_clean(text)


def test_heapchunks_and_bins_explain(stop):
    doc = stop.json("heapchunks --json")
    counts = Counter(c["state"] for a in doc["arenas"] for c in a["chunks"])
    if doc["mmapped"]:
        counts["mmapped"] = len(doc["mmapped"])
    text = stop.cmd("heapchunks --explain")
    assert explained(text) == dict(counts)
    assert re.search(r"^mp_\.mmap_threshold \([^)]+\): ", text, re.M)
    only = stop.cmd("heapchunks --explain --state smallbin")
    assert explained(only) == {"smallbin": counts["smallbin"]}
    in_bins = {k: v for k, v in counts.items() if k in ("tcache", "fastbin", "unsorted", "smallbin", "largebin")}
    assert explained(stop.cmd("bins --explain")) == in_bins


def test_threadstacks_explain(stop):
    rows = stop.json("threadstacks --json")["threads"]
    text = stop.cmd("threadstacks --explain")
    others = [r for r in rows if not r.get("main")]
    assert f"other threads ({len(others)}):" in text
    assert "main thread:" in text and "used and peak:" in text
    assert_clean(text)


def test_brkwatch_log_explain(demos):
    """malloc_sizes threshold: a 200 KiB block mmapped then freed raises mp_.mmap_threshold;
    the explanation names the munmap that did it, with the demo's new threshold."""
    g = Gdb(demo("malloc_sizes"), ("threshold",), extra_init=("set print thread-events off",))
    try:
        g.cmd("brkwatch on --mmap")
        g.run_to("freed")
        new = g.facts["threshold.new_threshold"]
        events = g.json("brkwatch log --json")["events"]
        text = g.cmd("brkwatch log --explain")
        heads = dict(re.findall(r"^(brk|mmap|munmap|mremap) \((\d+) events?", text, re.M))
        assert {k: int(v) for k, v in heads.items()} == dict(Counter(e["kind"] for e in events))
        m = re.search(r"^mp_\.mmap_threshold 128 KiB -> ([^:]+): changed by event (\d+) after a munmap "
                      r"of ([^(]+) \(event (\d+)\)", text, re.M)
        assert m, text
        munmap = next(e for e in events if e["kind"] == "munmap")
        assert munmap["mmap_threshold"] == new and int(m.group(4)) == munmap["seq"]
        assert m.group(1) == m.group(3).strip()  # the threshold is the freed block's size
        assert_clean(text)
    finally:
        g.close()
