"""Heap snapshots and their diff (heapsnap): plain data taken from a HeapState at one stop, and
a pure, state-aware comparison of two of them.

A snapshot holds every heap chunk but top (address, size without flag bits, state code, arena
number), each arena's top and system_mem, and the mmapped chunks.  It is saved as a versioned
JSON document (`to_json`/`from_json`), chunk addresses as deltas, so a later session compares a
live stop with a core of the same program, or two cores.

The diff is by chunk address: added (in B only, e.g. carved from top since A), removed (in A
only: merged away or given back), changed (same address, size or state differs: used -> tcache
is "freed to the thread's cache", not returned), and each arena's top apart from the chunks.
"""

from array import array
from typing import Dict, List, Optional, Tuple

from .chunks import FASTBIN, LARGEBIN, SMALLBIN, STATES, TOP, UNSORTED

FORMAT = "gdbext-heapsnap"
VERSION = 1
_BIN_STATES = (FASTBIN, UNSORTED, SMALLBIN, LARGEBIN)
_STATE_CODE = {name: i for i, name in enumerate(STATES)}


class Snapshot:
    """The heap at one stop, as plain data."""

    def __init__(self, name: str, meta: dict):
        self.name = name
        self.meta = meta  # pid, kind, glibc, header size, where the stop was
        self.addrs = array("Q")
        self.sizes = array("Q")
        self.states = bytearray()
        self.arena_of = bytearray()  # arena number of each chunk (up to 255 arenas kept apart)
        self.arenas: List[dict] = []  # {"address", "number", "top", "top_size", "system_mem"}
        self.mmapped: List[Tuple[int, int, int]] = []  # (chunk address, size, mapping size)

    def __len__(self) -> int:
        return len(self.addrs)

    @property
    def hdr(self) -> int:
        return int(self.meta.get("chunk_header", 16))

    def mallinfo(self) -> Dict[str, int]:
        """The mallinfo2 fields a snapshot knows: arena (system_mem), fordblks, fsmblks, uordblks,
        smblks, hblkhd (bytes of mmapped chunks, as found)."""
        free = fast = nfast = 0
        states, sizes = self.states, self.sizes
        for st in _BIN_STATES:
            i = states.find(st)
            while i >= 0:
                free += sizes[i]
                if st == FASTBIN:
                    fast += sizes[i]
                    nfast += 1
                i = states.find(st, i + 1)
        free += sum(a["top_size"] for a in self.arenas)
        system = sum(a["system_mem"] for a in self.arenas)
        return {
            "arena": system,
            "fordblks": free,
            "uordblks": system - free,
            "fsmblks": fast,
            "smblks": nfast,
            "hblkhd": sum(m for _, _, m in self.mmapped),
        }

    # ---- files ----
    def to_json(self) -> dict:
        deltas, last = [], 0
        for a in self.addrs:
            deltas.append(a - last)
            last = a
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "meta": self.meta,
            "arenas": self.arenas,
            "mmapped": [list(m) for m in self.mmapped],
            "chunks": {
                "address_deltas": deltas,
                "sizes": self.sizes.tolist(),
                "states": self.states.decode("latin-1"),
                "arenas": self.arena_of.decode("latin-1"),
            },
        }

    @classmethod
    def from_json(cls, doc: dict) -> "Snapshot":
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a heapsnap file")
        if doc.get("version") != VERSION:
            raise ValueError(f"heapsnap file version {doc.get('version')}, this gdbext reads {VERSION}")
        s = cls(str(doc.get("name", "")), dict(doc.get("meta") or {}))
        c = doc["chunks"]
        total = 0
        for d in c["address_deltas"]:
            total += d
            s.addrs.append(total)
        s.sizes = array("Q", c["sizes"])
        s.states = bytearray(c["states"].encode("latin-1"))
        s.arena_of = bytearray(c["arenas"].encode("latin-1"))
        if not len(s.addrs) == len(s.sizes) == len(s.states) == len(s.arena_of):
            raise ValueError("heapsnap file: chunk lists of different lengths")
        if any(b >= len(STATES) for b in set(s.states)):
            raise ValueError("heapsnap file: unknown chunk state")
        s.arenas = [dict(a) for a in doc["arenas"]]
        s.mmapped = [(int(a), int(b), int(m)) for a, b, m in doc["mmapped"]]
        return s


def take(name: str, state, meta: dict) -> Snapshot:
    """A snapshot of a HeapState (heap_view's model: every chunk walked)."""
    s = Snapshot(name, dict(meta, chunk_header=state.layout.chunk_hdr_sz))
    for n, a in enumerate(state.arenas):
        s.arenas.append(
            {
                "address": a.address,
                "number": n,
                "top": a.top,
                "top_size": a.top_size,
                "system_mem": a.system_mem,
            }
        )
        tag = min(n, 255)
        for seg in a.heaps:
            addrs, states = seg.addrs, seg.states
            for i in range(len(addrs)):
                st = states[i]
                if st == TOP:
                    continue
                s.addrs.append(addrs[i])
                s.sizes.append(seg.chunk_end(i) - addrs[i])
                s.states.append(st)
                s.arena_of.append(tag)
    s.mmapped = [(m.address, m.size, m.mapping_size) for m in state.mmapped]
    return s


def _chunk(s: Snapshot, i: int) -> dict:
    a = s.addrs[i]
    return {
        "address": a,
        "user_address": a + s.hdr,
        "size": s.sizes[i],
        "state": STATES[s.states[i]],
        "arena": s.arena_of[i],
    }


def _index(s: Snapshot) -> Dict[int, int]:
    return {a: i for i, a in enumerate(s.addrs)}


def _address(c: dict) -> int:
    return c["address"]


def diff(a: Snapshot, b: Snapshot, by: str = "size") -> dict:
    """What changed from a to b: the JSON body heapsnap diff prints (and its table reads)."""
    ia, ib = _index(a), _index(b)
    added = [_chunk(b, j) for addr, j in ib.items() if addr not in ia]
    removed = [_chunk(a, i) for addr, i in ia.items() if addr not in ib]
    changed = []
    for addr, i in ia.items():
        j = ib.get(addr)
        if j is None:
            continue
        if a.sizes[i] != b.sizes[j] or a.states[i] != b.states[j]:
            changed.append(
                {
                    "address": addr,
                    "user_address": addr + b.hdr,
                    "arena": b.arena_of[j],
                    "from": {"size": a.sizes[i], "state": STATES[a.states[i]]},
                    "to": {"size": b.sizes[j], "state": STATES[b.states[j]]},
                }
            )
    added.sort(key=_address)
    removed.sort(key=_address)
    changed.sort(key=_address)
    tops = []
    ta = {x["address"]: x for x in a.arenas}
    tb = {x["address"]: x for x in b.arenas}
    for addr in sorted(set(ta) | set(tb)):
        f, t = ta.get(addr), tb.get(addr)
        fs, ts = (f["top_size"] if f else None), (t["top_size"] if t else None)
        if fs != ts:
            number = t["number"] if t else f["number"] if f else None
            tops.append({"arena": number, "address": addr, "from": fs, "to": ts})
    ma, mb = {x[0]: x[1] for x in a.mmapped}, {x[0]: x[1] for x in b.mmapped}
    mm = {
        "added": [{"address": x, "size": mb[x]} for x in sorted(set(mb) - set(ma))],
        "removed": [{"address": x, "size": ma[x]} for x in sorted(set(ma) - set(mb))],
    }
    return {
        "from": a.name,
        "to": b.name,
        "added": added,
        "removed": removed,
        "changed": changed,
        "top": tops,
        "mmapped": mm,
        "summary": summary(a, b, added, removed, changed, by),
    }


def _group_key(c: dict, by: str, side: str = "") -> object:
    if by == "state":
        return c["state"] if side == "" else f"{c['from']['state']} -> {c['to']['state']}"
    if by == "arena":
        return c["arena"]
    return c["size"] if side == "" else c["to"]["size"]


def summary(a: Snapshot, b: Snapshot, added, removed, changed, by: str) -> dict:
    groups: Dict[object, dict] = {}

    def bump(key, kind, n_bytes):
        g = groups.setdefault(
            key, {"key": key, **{k: {"count": 0, "bytes": 0} for k in ("added", "removed", "changed")}}
        )
        g[kind]["count"] += 1
        g[kind]["bytes"] += n_bytes

    for c in added:
        bump(_group_key(c, by), "added", c["size"])
    for c in removed:
        bump(_group_key(c, by), "removed", c["size"])
    for c in changed:
        bump(_group_key(c, by, "changed"), "changed", c["to"]["size"] - c["from"]["size"])
    ordered = sorted(groups.values(), key=lambda g: (str(type(g["key"])), g["key"]))
    ma, mb = a.mallinfo(), b.mallinfo()
    return {
        "by": by,
        "groups": ordered,
        "added": {"count": len(added), "bytes": sum(c["size"] for c in added)},
        "removed": {"count": len(removed), "bytes": sum(c["size"] for c in removed)},
        "changed": {"count": len(changed)},
        "top_change": sum(x["top_size"] for x in b.arenas) - sum(x["top_size"] for x in a.arenas),
        "mallinfo2_change": {k: mb[k] - ma[k] for k in ma},
    }


def state_code(name: str) -> Optional[int]:
    return _STATE_CODE.get(name)
