"""heapchunks --summary (issue 15): the histogram against what the demo made and glibc counts.

heap_growth at "diff.a" holds its BLOCKS blocks of BLOCK bytes in use (one chunk size), and at
"diff.b" nine more 80-byte chunks (72 requested) freed to the tcache and a fastbin; glibc's
mallinfo2 at each stop gives the free bytes and the top chunk (keepcost).
"""

import pytest

from tests.harness import assert_clean, demo

pytestmark = pytest.mark.gdb


def groups(doc):
    return {g["key"]: (g["count"], g["bytes"]) for g in doc["summary"]["groups"]}


def test_summary_by_size_and_state(demos, gdb_session):
    g = gdb_session(demo("heap_growth"))
    g.run_to("diff.a")
    f = g.facts
    chunk = (f["block"] + 8 + 15) // 16 * 16  # request2size on 64 bits
    by_size = groups(g.json("heapchunks --summary --json"))
    assert by_size[chunk] == (f["blocks"], f["blocks"] * chunk)
    by_state = groups(g.json("heapchunks --summary --by state --json"))
    assert by_state["top"][1] == f["mallinfo2.diff.a.keepcost"]
    free = sum(b for k, (_, b) in by_state.items() if k in ("fastbin", "unsorted", "smallbin", "largebin", "top"))
    assert free == f["mallinfo2.diff.a.fordblks"]
    g.run_to("diff.b")
    small = g.json("heapchunks --summary --state tcache,fastbin --json")
    assert groups(small)[80][0] == 9
    text = g.cmd("heapchunks --summary")
    assert_clean(text)
    assert "% bytes" in text
