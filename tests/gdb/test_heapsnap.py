"""heapsnap (issue 15): the diff between two stops against what the demo did between them.

heap_growth stops at "diff.a" with every main block in use and top the only free chunk; then,
with nothing else allocating, it allocates SMALL chunks of 72 bytes and MEDIUM of 2000 (both
carved from top), frees the small ones again (a tcache takes the first `fill count` of them,
then a fastbin; 2.43 and later have no fastbins and a fill count of 16) and frees main block 1, between two
blocks in use; it prints every address and glibc's mallinfo2 at both stops.  The diff must list
exactly those chunks, top's change must be the bytes carved from it, and the summary's mallinfo2
change must be glibc's.  A snapshot file saved at "diff.b" against a core of that stop: empty.
"""

import os

import pytest

from tests import glibcs as G
from tests.harness import assert_clean, glibc_key

pytestmark = pytest.mark.gdb

VERSIONS = tuple(G.VERSIONS)


def fill_count(version: str) -> int:
    """glibc's default tcache_count: 16 from 2.43, 7 before."""
    return 16 if glibc_key(version) >= (2, 43) else 7


@pytest.fixture(scope="module")
def all_glibcs():
    try:
        return G.ensure(VERSIONS)
    except G.Unreachable as e:
        pytest.skip(f"Debian's archive is unreachable, no other glibc to test: {e}")


def start(all_glibcs, gdb_session, version, symbols=True):
    g = all_glibcs[version]
    if symbols and not g.has_symbols:
        pytest.skip(f"no debug symbols for glibc {version}")
    return gdb_session(g.demo("heap_growth"), extra_init=[*g.gdb_init(symbols), "set print thread-events off"],
                       env=g.gdb_env), g


def mallinfo(facts, stop):
    pre = f"mallinfo2.{stop}."
    return {k[len(pre):]: v for k, v in facts.items() if k.startswith(pre)}


@pytest.mark.parametrize("version", VERSIONS)
def test_diff_lists_what_the_demo_did(all_glibcs, demos, gdb_session, version, tmp_path):
    s, g = start(all_glibcs, gdb_session, version)
    s.run_to("diff.a")
    assert "saved 'a'" in s.cmd("heapsnap save a")
    s.run_to("diff.b")
    doc = s.json("heapsnap diff a --json")
    f = s.facts
    small = [f[f"diff.small.{i}"] for i in range(9)]
    medium = [f[f"diff.medium.{i}"] for i in range(3)]
    fill = fill_count(version)
    fast = glibc_key(version) < (2, 43)  # fastbins until 2.43
    want = {u: "tcache" for u in small[:fill]}
    want.update({u: "fastbin" if fast else "tcache" for u in small[fill:]})
    want.update({u: "used" for u in medium})
    assert {c["user_address"]: c["state"] for c in doc["added"]} == want
    assert all(c["arena"] == 0 for c in doc["added"])
    assert doc["removed"] == []
    [changed] = doc["changed"]
    assert changed["user_address"] == f["diff.freed_block"]
    assert changed["from"] == {"size": changed["to"]["size"], "state": "used"}
    assert changed["to"]["state"] == "unsorted"
    carved = sum(c["size"] for c in doc["added"])
    assert carved == 9 * 80 + 3 * 2016
    [top] = doc["top"]
    assert top["arena"] == 0 and top["from"] - top["to"] == carved
    a, b = mallinfo(f, "diff.a"), mallinfo(f, "diff.b")
    assert doc["summary"]["mallinfo2_change"] == {k: b[k] - a[k] for k in doc["summary"]["mallinfo2_change"]}
    # the summary's changed, as a group's, is a count and bytes (the size changes)
    grown = sum(c["to"]["size"] - c["from"]["size"] for c in doc["changed"])
    assert doc["summary"]["changed"] == {"count": len(doc["changed"]), "bytes": grown}, doc["summary"]
    text = s.cmd("heapsnap diff a --by state")
    assert_clean(text)
    assert "used -> unsorted" in text

    # a file saved at this stop against a core of the same stop: nothing changed
    path, core = tmp_path / "b.json", tmp_path / "b.core"
    assert "written to" in s.cmd(f"heapsnap save b --file {path}")
    live_stat = s.json("heapstat --json")
    s.cmd(f"gcore {core}", timeout=120)
    [saved] = [x for x in s.json("heapsnap list --json")["snapshots"] if x["name"] == "b"]
    assert os.path.getsize(path) < 60 * saved["chunks"]
    c = gdb_session(g.demo("heap_growth"), extra_init=g.gdb_init(True), env=g.gdb_env)
    c.cmd(f"core-file {core}", timeout=120)
    empty = c.json(f"heapsnap diff {path} --json")
    assert empty["target"]["kind"] == "core"
    assert (empty["added"], empty["removed"], empty["changed"], empty["top"]) == ([], [], [], [])
    assert "no chunk, top or mmapped chunk changed" in c.cmd(f"heapsnap diff {path}")
    # heapstat on the core: the same sizes, resident bytes unknown
    core_stat = c.json("heapstat --json")
    assert core_stat["trim_reclaimable"] is None and core_stat["total"]["resident"] is None
    sizes = [{k: v["bytes"] for k, v in a.items() if isinstance(v, dict) and "bytes" in v}
             for a in core_stat["arenas"]]
    assert sizes == [{k: v["bytes"] for k, v in a.items() if isinstance(v, dict) and "bytes" in v}
                     for a in live_stat["arenas"]]
    assert "unknown" in c.cmd("heapstat")


def test_messages(demos, gdb_session):
    from tests.harness import demo

    s = gdb_session(demo("heap_growth"))
    assert "no snapshot saved" in s.cmd("heapsnap list")
    s.run_to("diff.a")
    out = s.cmd("heapsnap diff nope")
    assert out.startswith("heapsnap: no snapshot named 'nope'") and "Traceback" not in out
    out = s.cmd("heapsnap diff /nonexistent/x.json")
    assert out.startswith("heapsnap: cannot read /nonexistent/x.json")
    out = s.cmd("heapsnap drop nope")
    assert out.startswith("heapsnap: no snapshot named 'nope'")


def test_list_and_drop_json(demos, gdb_session, tmp_path):
    """heapsnap list --json rows have the README's keys, `file` null for a snapshot kept only in
    gdb, and the document its target (null with no process); drop takes --json too."""
    from tests.harness import demo

    s = gdb_session(demo("heap_growth"))
    empty = s.json("heapsnap list --json")
    assert empty["target"] is None and empty["snapshots"] == []
    s.run_to("diff.a")
    path = tmp_path / "b.json"
    s.cmd("heapsnap save a")
    s.cmd(f"heapsnap save b --file {path}")
    doc = s.json("heapsnap list --json")
    assert doc["target"]["pid"] == s.json("heapsnap save c --json")["target"]["pid"]
    keys = {"name", "chunks", "arenas", "pid", "kind", "glibc", "symbols", "file"}
    assert [set(r) for r in doc["snapshots"]] == [keys, keys], doc
    assert [(r["name"], r["file"]) for r in doc["snapshots"]] == [("a", None), ("b", str(path))]
    dropped = s.json("heapsnap drop a --json")
    assert dropped["dropped"] == "a" and dropped["target"]["pid"] == doc["target"]["pid"]
    assert [r["name"] for r in s.json("heapsnap list --json")["snapshots"]] == ["b", "c"]
