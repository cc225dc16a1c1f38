"""heapsnap's snapshot and diff (model/ptmalloc/snapshot.py) on built heaps, without gdb."""

import json

import pytest

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.snapshot import Snapshot, diff, take
from tests.unit.test_ptmalloc_builder import HeapBuilder


def heap(version, later: bool):
    L = Layout.for_version(version, 8)
    b = HeapBuilder(L)
    b.tcache_for(1)
    x = b.alloc(0x100)
    y = b.alloc(0x500)
    g = b.alloc(0x20)
    z = None
    if later:
        z = b.alloc(0x40)
        b.bin_put(y, 1)
    return b.analyze(), dict(x=x, y=y, g=g, z=z)


@pytest.mark.parametrize("version", [(2, 31), (2, 41), (2, 43)])
def test_diff_is_by_address_and_state(version):
    sa, _ = heap(version, False)
    sb, c = heap(version, True)
    a, b = take("a", sa, {}), take("b", sb, {})
    d = diff(a, b)
    assert [x["address"] for x in d["added"]] == [c["z"]]
    assert d["added"][0]["user_address"] == c["z"] + 16 and d["added"][0]["state"] == "used"
    assert d["removed"] == []
    assert [(x["address"], x["from"]["state"], x["to"]["state"]) for x in d["changed"]] == [
        (c["y"], "used", "unsorted")
    ]
    [top] = d["top"]
    assert top["from"] - top["to"] == 0x40
    s = d["summary"]
    assert s["added"] == {"count": 1, "bytes": 0x40} and s["top_change"] == -0x40
    mi = s["mallinfo2_change"]
    assert mi["fordblks"] == 0x500 - 0x40 and mi["uordblks"] == -mi["fordblks"]
    assert diff(b, b)["added"] == diff(b, b)["changed"] == diff(b, b)["top"] == []


def test_file_round_trip_and_refusals():
    sb, _ = heap((2, 36), True)
    b = take("b", sb, {"pid": 1})
    doc = json.loads(json.dumps(b.to_json()))
    again = Snapshot.from_json(doc)
    assert list(again.addrs) == list(b.addrs) and again.states == b.states and again.arenas == b.arenas
    assert diff(b, again)["changed"] == []
    with pytest.raises(ValueError):
        Snapshot.from_json({"format": "other"})
    with pytest.raises(ValueError):
        Snapshot.from_json(dict(doc, version=99))


def _reference(a: Snapshot, b: Snapshot, by: str) -> dict:
    """The diff written the plain way (a dict per chunk, a loop per chunk): what the bulk
    alignment in diff() must agree with."""
    from gdbext.model.ptmalloc.chunks import STATES

    def chunks(s):
        return {ad: (z, STATES[st], n) for ad, z, st, n in zip(s.addrs, s.sizes, s.states, s.arena_of)}

    ca, cb = chunks(a), chunks(b)
    added = [(x, cb[x]) for x in sorted(cb) if x not in ca]
    removed = [(x, ca[x]) for x in sorted(ca) if x not in cb]
    changed = [(x, ca[x], cb[x]) for x in sorted(ca) if x in cb and ca[x] != cb[x]]
    groups: dict = {}

    def bump(key, kind, n):
        g = groups.setdefault(key, {"key": key, "added": [0, 0], "removed": [0, 0], "changed": [0, 0]})
        g[kind][0] += 1
        g[kind][1] += n

    pick = {"size": 0, "state": 1, "arena": 2}[by]
    for _, c in added:
        bump(c[pick], "added", c[0])
    for _, c in removed:
        bump(c[pick], "removed", c[0])
    for _, f, t in changed:
        bump(f"{f[1]} -> {t[1]}" if by == "state" else t[pick], "changed", t[0] - f[0])
    return {"added": added, "removed": removed, "changed": changed, "groups": groups}


@pytest.mark.parametrize("steps", [100_000, 3])
@pytest.mark.parametrize("seed", range(12))
def test_diff_agrees_with_a_plain_diff(seed, steps, monkeypatch):
    """Random chunk lists with runs of changes anywhere (at the ends too): the bulk alignment
    finds exactly what a loop over every chunk finds, and the summary groups agree; also when
    the merge gives up after a few steps and aligns the rest by sets."""
    import random

    from gdbext.model.ptmalloc import snapshot

    monkeypatch.setattr(snapshot, "MAX_STEPS", steps)

    rng = random.Random(seed)
    a = Snapshot("a", {})
    addr = 0x1000
    for _ in range(rng.choice((0, 1, 50, 3000))):
        addr += rng.choice((0x20, 0x30, 0x100))
        a.addrs.append(addr)
        a.sizes.append(rng.choice((0x20, 0x30, 0x100)))
        a.states.append(rng.randrange(6))
        a.arena_of.append(rng.randrange(3))
    b = Snapshot("b", {})
    for i in range(len(a)):
        r = rng.random()
        if r < 0.05:
            continue  # removed
        b.addrs.append(a.addrs[i])
        b.sizes.append(a.sizes[i] if r > 0.1 else a.sizes[i] + 0x10)
        b.states.append(a.states[i] if r < 0.9 else rng.randrange(6))
        b.arena_of.append(a.arena_of[i] if r < 0.97 else rng.randrange(3))
        if rng.random() < 0.03:  # added between this one and the next
            nxt = a.addrs[i + 1] if i + 1 < len(a) else a.addrs[i] + 0x40
            if nxt - a.addrs[i] > 8:
                b.addrs.append(a.addrs[i] + 8)
                b.sizes.append(8)
                b.states.append(0)
                b.arena_of.append(0)
    for by in ("size", "state", "arena"):
        d, ref = diff(a, b, by), _reference(a, b, by)
        assert [(c["address"], (c["size"], c["state"], c["arena"])) for c in d["added"]] == ref["added"]
        assert [(c["address"], (c["size"], c["state"], c["arena"])) for c in d["removed"]] == ref["removed"]
        got = [
            (c["address"], (c["from"]["size"], c["from"]["state"]), (c["to"]["size"], c["to"]["state"], c["arena"]))
            for c in d["changed"]
        ]
        assert got == [(x, f[:2], t) for x, f, t in ref["changed"]]
        groups = {
            g["key"]: {k: [g[k]["count"], g[k]["bytes"]] for k in ("added", "removed", "changed")}
            for g in d["summary"]["groups"]
        }
        assert groups == {k: {x: g[x] for x in ("added", "removed", "changed")} for k, g in ref["groups"].items()}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_sites", [False, True])
def test_streamed_diff_json_is_the_document_byte_for_byte(seed, with_sites, monkeypatch):
    """heapsnap diff --json streams its chunk lists as text (diff(lazy=True) and
    jsonout.document_pieces) instead of a dict per chunk: the text is exactly what
    jsonout.document writes for diff()'s lists of dicts, with and without call sites (labels
    with quotes, backslashes, non-ASCII; chunks with none), for empty lists too, and when the
    lists are cut into several pieces."""
    import random

    from gdbext.model.ptmalloc import snapshot
    from gdbext.render import jsonout

    monkeypatch.setattr(snapshot, "_BATCH", 7)
    rng = random.Random(seed)
    labels = ['main.c:12 "x"', "a\\b", "f\u00e9e \u2603", "-"]

    def snap(name, n):
        s = Snapshot(name, {"chunk_header": 16})
        addr = 0x1000
        for _ in range(n):
            addr += rng.choice((0x20, 0x30, 0x100))
            s.addrs.append(addr)
            s.sizes.append(rng.choice((0x20, 0x30, 0x100)))
            s.states.append(rng.randrange(6))
            s.arena_of.append(rng.randrange(3))
        if with_sites:
            s.sites = {x: rng.choice(labels) for x in s.addrs if rng.random() < 0.7}
        return s

    a, b = snap("a", rng.choice((0, 40, 300))), snap("b", rng.choice((0, 40, 300)))
    target = {"pid": 7, "kind": "live", "glibc": "2.36", "symbols": True}
    for by in ("size", "state", "site") if with_sites else ("size", "arena"):
        want = jsonout.document("heapsnap", target, **diff(a, b, by))
        got = "".join(jsonout.document_pieces("heapsnap", target, **diff(a, b, by, lazy=True)))
        assert got == want
        assert json.loads(got)["added"] == diff(a, b, by)["added"]
