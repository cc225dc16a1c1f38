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
