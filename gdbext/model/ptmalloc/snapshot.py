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
from itertools import compress, repeat
from operator import add, mul, sub
from typing import Dict, List, Optional, Tuple

from .chunks import FASTBIN, LARGEBIN, SMALLBIN, STATES, TOP, UNSORTED, USED

FORMAT = "gdbext-heapsnap"
VERSION = 1
_BIN_STATES = (FASTBIN, UNSORTED, SMALLBIN, LARGEBIN)
_STATE_CODE = {name: i for i, name in enumerate(STATES)}
_NOT_TOP = bytes(int(c != TOP) for c in range(256))
_IN_BINS = bytes(int(c in _BIN_STATES) for c in range(256))
_FAST = bytes(int(c == FASTBIN) for c in range(256))
_USED = bytes(int(c == USED) for c in range(256))


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
        self.sites: Dict[int, str] = {}  # chunk address -> allocwatch's call site (chunks in use)

    def add_sites(self, label_of) -> None:
        """Name the call site of each chunk in use: label_of(user address) -> a label."""
        hdr = self.hdr
        used = self.states.translate(_USED)
        self.sites = {a: label_of(a + hdr) for a in compress(self.addrs, used)}
        self.sites.update((a, label_of(a + hdr)) for a, _, _ in self.mmapped)

    def __len__(self) -> int:
        return len(self.addrs)

    @property
    def hdr(self) -> int:
        return int(self.meta.get("chunk_header", 16))

    def mallinfo(self) -> Dict[str, int]:
        """The mallinfo2 fields a snapshot knows: arena (system_mem), fordblks, fsmblks, uordblks,
        smblks, hblkhd (bytes of mmapped chunks, as found)."""
        states, sizes = self.states, self.sizes
        free = sum(compress(sizes, states.translate(_IN_BINS)))
        fast = sum(compress(sizes, states.translate(_FAST)))
        nfast = states.count(FASTBIN)
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
            "sites": [[a, label] for a, label in sorted(self.sites.items())],
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
        s.sites = {int(a): str(label) for a, label in doc.get("sites") or ()}
        return s


def take(name: str, state, meta: dict) -> Snapshot:
    """A snapshot of a HeapState (heap_view's model: every chunk walked).  At C speed per heap:
    a chunk's size is the distance to the next chunk, top is left out."""
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
            if not len(addrs):
                continue
            sizes = array("Q", map(sub, addrs[1:], addrs[:-1]))
            sizes.append(seg.chunk_end(len(addrs) - 1) - addrs[-1])
            keep = states.translate(_NOT_TOP)
            if keep.count(0):
                s.addrs.extend(compress(addrs, keep))
                s.sizes.extend(compress(sizes, keep))
                s.states.extend(compress(states, keep))
                s.arena_of.extend(repeat(tag, len(keep) - keep.count(0)))
            else:
                s.addrs.extend(addrs)
                s.sizes.extend(sizes)
                s.states.extend(states)
                s.arena_of.extend(repeat(tag, len(addrs)))
    s.mmapped = [(m.address, m.size, m.mapping_size) for m in state.mmapped]
    return s


_BLOCK = 4096


def _equal(a: Snapshot, i: int, b: Snapshot, j: int, n: int) -> bool:
    """Whether a's n entries from i are b's n entries from j (slices compared at C speed)."""
    return (
        a.addrs[i : i + n] == b.addrs[j : j + n]
        and a.sizes[i : i + n] == b.sizes[j : j + n]
        and a.states[i : i + n] == b.states[j : j + n]
        and a.arena_of[i : i + n] == b.arena_of[j : j + n]
    )


def _same_addrs(a: Snapshot, i: int, b: Snapshot, j: int, n: int) -> bool:
    return a.addrs[i : i + n] == b.addrs[j : j + n]


def _run(same, most: int) -> int:
    """How many leading positions `same(k, n)` (k onwards, n of them) holds for, found by blocks
    then halving: C-speed slice compares, never a Python loop over the chunks."""
    done = 0
    while done < most:
        n = min(_BLOCK, most - done)
        if same(done, n):
            done += n
            continue
        while n > 1:
            half = n // 2
            if same(done, half):
                done += half
                n -= half
            else:
                n = half
        return done
    return done


def _common_ends(a: Snapshot, b: Snapshot) -> Tuple[int, int]:
    """How many chunk addresses both start with and end with."""
    most = min(len(a), len(b))
    pre = _run(lambda k, n: _same_addrs(a, k, b, k, n), most)
    na, nb = len(a), len(b)
    suf = _run(lambda k, n: _same_addrs(a, na - k - n, b, nb - k - n, n), most - pre)
    return pre, suf


def _differing(a: Snapshot, i0: int, b: Snapshot, j0: int, n: int) -> List[int]:
    """Offsets k < n where a's entry i0 + k and b's entry j0 + k (the same address) differ, by
    halving ranges that differ: a few changes among a million chunks cost a few hundred
    slice compares."""
    out: List[int] = []
    todo = [(0, n)]
    while todo:
        i, j = todo.pop()
        if i >= j or _equal(a, i0 + i, b, j0 + i, j - i):
            continue
        if j - i <= 8:
            out.extend(k for k in range(i, j) if not _equal(a, i0 + k, b, j0 + k, 1))
            continue
        m = (i + j) // 2
        todo.append((m, j))
        todo.append((i, m))
    return out


def _pair(s: Snapshot, i: int) -> Tuple[int, int]:
    return s.addrs[i], (s.sizes[i] * 16 + s.states[i]) * 256 + s.arena_of[i]


def _pairs(s: Snapshot, lo: int, hi: int) -> set:
    """{(address, code)} of entries lo to hi: code packs size, state and arena, so set
    differences find every added, removed and changed chunk without a loop in Python."""
    codes = map(
        add,
        map(mul, map(add, map(mul, s.sizes[lo:hi], repeat(16)), s.states[lo:hi]), repeat(256)),
        s.arena_of[lo:hi],
    )
    return set(zip(s.addrs[lo:hi], codes))


def _decoded(address: int, code: int, hdr: int) -> dict:
    rest, arena = divmod(code, 256)
    size, st = divmod(rest, 16)
    return {
        "address": address,
        "user_address": address + hdr,
        "size": size,
        "state": STATES[st],
        "arena": arena,
    }


def _address(c: dict) -> int:
    return c["address"]


def diff(a: Snapshot, b: Snapshot, by: str = "size") -> dict:
    """What changed from a to b: the JSON body heapsnap diff prints (and its table reads)."""
    # Chunks at the same addresses at both ends (most of a heap between two stops): only the
    # entries that differ there; the middle, where chunks came and went, by set differences.
    pre, suf = _common_ends(a, b)
    hi_a, hi_b = len(a) - suf, len(b) - suf
    pa, pb = _pairs(a, pre, hi_a), _pairs(b, pre, hi_b)
    for i, j, n in ((0, 0, pre), (hi_a, hi_b, suf)):
        for k in _differing(a, i, b, j, n):
            pa.add(_pair(a, i + k))
            pb.add(_pair(b, j + k))
    only_a, only_b = pa - pb, pb - pa  # (address, code): C speed for a million chunks
    from_a: Dict[int, int] = dict(only_a)
    to_b: Dict[int, int] = dict(only_b)
    hdr = b.hdr
    added = [_decoded(addr, code, hdr) for addr, code in to_b.items() if addr not in from_a]
    removed = [_decoded(addr, code, a.hdr) for addr, code in from_a.items() if addr not in to_b]
    changed = []
    for addr, code in from_a.items():
        new = to_b.get(addr)
        if new is None:
            continue
        old, now = _decoded(addr, code, hdr), _decoded(addr, new, hdr)
        changed.append(
            {
                "address": addr,
                "user_address": addr + hdr,
                "arena": now["arena"],
                "from": {"size": old["size"], "state": old["state"]},
                "to": {"size": now["size"], "state": now["state"]},
            }
        )
    if a.sites or b.sites or by == "site":
        for c in added:
            c["site"] = b.sites.get(c["address"])
        for c in removed:
            c["site"] = a.sites.get(c["address"])
        for c in changed:
            c["site"] = b.sites.get(c["address"]) or a.sites.get(c["address"])
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
    if by == "site":
        return c.get("site") or "-"
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
