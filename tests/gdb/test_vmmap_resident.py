"""vmmap --summary's resident bytes and vmmap's offsets against the kernel (issue 12, item 12).

The mmap_merge demo puts malloc's mmapped chunks in the middle of anonymous mappings next to
pages of its own that it fills, so a mapping is cut into regions whose resident bytes differ
from a share by size.  The oracles: /proc/PID/pagemap (bit 63, "present") read by the test for
each region, /proc/PID/smaps' Rss, and the offsets /proc/PID/maps prints.
"""

import os
import shutil
import struct

import pytest

from tests.harness import assert_clean, demo, proc_maps, remote_session

pytestmark = pytest.mark.gdb

PAGE = os.sysconf("SC_PAGE_SIZE")


def pagemap_resident(pid: int, start: int, end: int) -> int:
    """The bytes of [start, end) that lie on pages present in memory, from the kernel's page map,
    less the kernel's zero page (/proc/kpageflags bit 24, KPF_ZERO_PAGE) as smaps' Rss leaves
    it out: reading untouched anonymous memory, as gdb does, maps it."""
    total = 0
    if start >= 1 << 47:  # [vsyscall]: the page map covers user space only, smaps says 0
        return 0
    with open(f"/proc/{pid}/pagemap", "rb") as f, open("/proc/kpageflags", "rb") as kf:
        for page in range(start // PAGE, (end - 1) // PAGE + 1):
            f.seek(page * 8)
            (entry,) = struct.unpack("<Q", f.read(8))
            pfn = entry & ((1 << 55) - 1)
            assert pfn or not entry >> 63, "the test runs as root: frame numbers are shown"
            if pfn:
                kf.seek(pfn * 8)
                (flags,) = struct.unpack("<Q", kf.read(8))
                if flags >> 24 & 1:
                    continue
            if entry >> 63:
                lo, hi = max(start, page * PAGE), min(end, (page + 1) * PAGE)
                total += hi - lo
    return total


def smaps_rss(pid: int) -> int:
    with open(f"/proc/{pid}/smaps") as fh:
        return sum(int(line.split()[1]) * 1024 for line in fh if line.startswith("Rss:"))


@pytest.fixture
def merged(gdb_session):
    g = gdb_session(demo("mmap_merge"))
    g.run_to("merged")
    assert g.facts["A.merged"] == 1 and g.facts["B.merged"] == 1
    return g


def test_resident_bytes_of_parts_of_mappings_are_the_page_maps(merged):
    g, pid = merged, merged.facts["pid"]
    regions = g.json("vmmap --json")["regions"]
    doc = g.json("vmmap --summary --json")
    kinds = doc["summary"]["kinds"]
    want: dict = {}
    for r in regions:
        want[r["kind"]] = want.get(r["kind"], 0) + pagemap_resident(pid, r["start"], r["end"])
    got = {k: e["resident"] for k, e in kinds.items()}
    assert got == want  # before: mmap-chunk and anon were shares by size (0x35387 bytes, say)
    assert all(e["resident_estimated"] is False for e in kinds.values())
    assert doc["summary"]["total"]["resident"] == smaps_rss(pid)
    assert doc["summary"]["total"]["resident_estimated"] is False
    text = g.cmd("vmmap --summary")
    assert_clean(text)
    assert "~" not in text


def test_offset_of_an_anonymous_remainder_is_what_maps_says(merged):
    g, pid = merged, merged.facts["pid"]
    maps = proc_maps(pid)
    regions = g.json("vmmap --json")["regions"]
    anon_parts = 0
    for r in regions:
        m = next(m for m in maps if m.start <= r["start"] < m.end)
        if m.anonymous or m.path.startswith("["):
            assert r["offset"] == m.offset, (r, m)  # /proc/PID/maps prints 0 for anonymous memory
            anon_parts += r["start"] != m.start
        else:
            assert r["offset"] == m.offset + r["start"] - m.start, (r, m)  # a file's offset
    assert anon_parts >= 2  # the chunks' pieces and the remainders after them
    text = g.cmd("vmmap")
    a = g.facts["A.vma_start"]
    rows = [line.split() for line in text.splitlines() if line.startswith("0x")]
    in_merged = [row for row in rows if a <= int(row[0], 16) < g.facts["A.vma_end"]]
    assert len(in_merged) >= 3 and all(row[6] == "0x0" for row in in_merged), in_merged


def test_under_gdbserver_parts_are_marked_estimates(gdb_session):
    if shutil.which("gdbserver") is None:
        pytest.skip("gdbserver is not installed")
    with remote_session(gdb_session, "mmap_merge") as g:
        doc = g.json("vmmap --summary --json")
        assert doc["target"]["kind"] == "remote"
        kinds = doc["summary"]["kinds"]
        # The chunks are parts of mappings, their pages partly resident: a share is an estimate.
        assert kinds["mmap-chunk"]["resident_estimated"] is True
        assert doc["summary"]["total"]["resident_estimated"] is True
        # Whole mappings stay exact: smaps' Rss, read through gdbserver.
        assert kinds["code"]["resident_estimated"] is False
        assert doc["summary"]["total"]["resident"] <= smaps_rss(doc["target"]["pid"])
        text = g.cmd("vmmap --summary")
        assert_clean(text)
        chunk_row = next(line for line in text.splitlines() if line.startswith("mmap-chunk"))
        assert " ~0x" in chunk_row, chunk_row
        code_row = next(line for line in text.splitlines() if line.startswith("code"))
        assert "~" not in code_row
        assert "~ estimated:" in text
