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
from itertools import compress, islice, repeat
from json import dumps
from operator import add, ne, sub
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from .chunks import FASTBIN, LARGEBIN, SMALLBIN, STATES, TOP, UNSORTED, USED

FORMAT = "gdbext-heapsnap"
VERSION = 1
_BIN_STATES = (FASTBIN, UNSORTED, SMALLBIN, LARGEBIN)
_STATE_CODE = {name: i for i, name in enumerate(STATES)}
_NOT_TOP = bytes(int(c != TOP) for c in range(256))
_IN_BINS = bytes(int(c in _BIN_STATES) for c in range(256))
_FAST = bytes(int(c == FASTBIN) for c in range(256))
_NOT = bytes(int(c == 0) for c in range(256))
_USED = bytes(int(c == USED) for c in range(256))
_KINDS = ("added", "removed", "changed")


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
            keep = states.translate(_NOT_TOP)
            if keep.count(0) == 1 and not keep[-1]:  # top ends the heap, as it mostly does
                s.addrs.extend(addrs[:-1])  # array slices: copied, not gone through
                s.sizes.extend(sizes)
                s.states.extend(states[:-1])
                s.arena_of.extend(bytes((tag,)) * (len(addrs) - 1))
                continue
            sizes.append(seg.chunk_end(len(addrs) - 1) - addrs[-1])
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


class _Picked:
    """The entries of one snapshot at some indices, field by field (map over array.__getitem__:
    C speed, no Python step per entry)."""

    def __init__(self, s: Snapshot, at: List[int]):
        self.addrs = list(map(s.addrs.__getitem__, at))
        self.sizes = list(map(s.sizes.__getitem__, at))
        self.states = list(map(s.states.__getitem__, at))
        self.arenas = list(map(s.arena_of.__getitem__, at))

    def rows(self, hdr: int) -> List[dict]:
        """CHUNK documents, in the order picked."""
        names = STATES
        return [
            {"address": a, "user_address": a + hdr, "size": z, "state": names[st], "arena": n}
            for a, z, st, n in zip(self.addrs, self.sizes, self.states, self.arenas)
        ]


def _changed_rows(old: _Picked, new: _Picked, hdr: int) -> List[dict]:
    names = STATES
    return [
        {
            "address": a,
            "user_address": a + hdr,
            "arena": n,
            "from": {"size": oz, "state": names[ost]},
            "to": {"size": nz, "state": names[nst]},
        }
        for a, n, oz, ost, nz, nst in zip(new.addrs, new.arenas, old.sizes, old.states, new.sizes, new.states)
    ]


_BATCH = 20_000  # rows formatted per piece of a streamed list


class ChunkRows:
    """A diff's added or removed chunks as CHUNK documents, made only when asked: as dicts
    (rows()) or as the JSON text json.dumps(rows(), separators=(",", ":")) would write,
    streamed in pieces (json_pieces()) with no dict made per chunk."""

    def __init__(self, picked: _Picked, hdr: int, sites: Optional[Dict[int, str]]):
        self.picked = picked
        self.hdr = hdr
        self.sites = sites  # None: the rows have no "site"

    def __len__(self) -> int:
        return len(self.picked.addrs)

    def rows(self) -> List[dict]:
        rows = self.picked.rows(self.hdr)
        if self.sites is not None:
            for c in rows:
                c["site"] = self.sites.get(c["address"])
        return rows

    def json_pieces(self) -> Iterator[str]:
        p = self.picked
        head = '{"address":%d,"user_address":%d,"size":%d,"state":"%s","arena":%d'
        cols: list = [
            p.addrs,
            map(add, p.addrs, repeat(self.hdr)),
            p.sizes,
            map(STATES.__getitem__, p.states),
            p.arenas,
        ]
        if self.sites is None:
            texts = map((head + "}").__mod__, zip(*cols))
        else:
            cols.append(map(dumps, map(self.sites.get, p.addrs)))
            texts = map((head + ',"site":%s}').__mod__, zip(*cols))
        return _json_list(texts)


class ChangedRows:
    """A diff's changed chunks, as ChunkRows has its chunks: {"address", "user_address",
    "arena", "from": {"size", "state"}, "to": {"size", "state"}} (and "site")."""

    def __init__(self, old: _Picked, new: _Picked, hdr: int, sites: Optional[Tuple[dict, dict]]):
        self.old = old
        self.new = new
        self.hdr = hdr
        self.sites = sites  # (B's sites, A's sites), or None: the rows have no "site"

    def __len__(self) -> int:
        return len(self.new.addrs)

    def _site(self, address: int) -> Optional[str]:
        assert self.sites is not None
        return self.sites[0].get(address) or self.sites[1].get(address)

    def rows(self) -> List[dict]:
        rows = _changed_rows(self.old, self.new, self.hdr)
        if self.sites is not None:
            for c in rows:
                c["site"] = self._site(c["address"])
        return rows

    def json_pieces(self) -> Iterator[str]:
        old, new = self.old, self.new
        head = (
            '{"address":%d,"user_address":%d,"arena":%d,'
            '"from":{"size":%d,"state":"%s"},"to":{"size":%d,"state":"%s"}'
        )
        cols: list = [
            new.addrs,
            map(add, new.addrs, repeat(self.hdr)),
            new.arenas,
            old.sizes,
            map(STATES.__getitem__, old.states),
            new.sizes,
            map(STATES.__getitem__, new.states),
        ]
        if self.sites is None:
            texts = map((head + "}").__mod__, zip(*cols))
        else:
            cols.append(map(dumps, map(self._site, new.addrs)))
            texts = map((head + ',"site":%s}').__mod__, zip(*cols))
        return _json_list(texts)


def _json_list(texts: Iterable[str]) -> Iterator[str]:
    """ "[" + ",".join(texts) + "]", in pieces of _BATCH texts."""
    yield "["
    sep = ""
    while True:
        batch = list(islice(texts, _BATCH))
        if not batch:
            break
        yield sep + ",".join(batch)
        sep = ","
    yield "]"


def _unequal(a: Snapshot, in_a: bytes, lo_a: int, b: Snapshot, in_b: bytes, lo_b: int, n: int) -> bytes:
    """One byte per address both hold (the entries of a from lo_a and of b from lo_b that the
    masks pick, n of each): 1 where size, state or arena differ, the three comparisons ORed
    as big integers."""
    if not n:
        return b""
    mask = 0
    for fa, fb in ((a.sizes, b.sizes), (a.states, b.states), (a.arena_of, b.arena_of)):
        pa = compress(fa[lo_a : lo_a + len(in_a)], in_a)
        pb = compress(fb[lo_b : lo_b + len(in_b)], in_b)
        mask |= int.from_bytes(bytes(map(ne, pa, pb)), "little")
    return mask.to_bytes(n, "little")


MAX_STEPS = 100_000  # entries stepped over one at a time before the rest is aligned by sets


def _same_run(ma: memoryview, i: int, mb: memoryview, j: int, most: int) -> int:
    """How many entries from ma[i] and mb[j] on are equal: memoryview slices compared (memcmp,
    no copy), in blocks that double while they match, then halved."""
    done, n = 0, 1
    while done < most:
        n = min(n, most - done)
        if ma[i + done : i + done + n] == mb[j + done : j + done + n]:
            done += n
            n *= 2
            continue
        while n > 1:
            half = n // 2
            if ma[i + done : i + done + half] == mb[j + done : j + done + half]:
                done += half
                n -= half
            else:
                n = half
        return done
    return done


def _changed_in_run(a: Snapshot, i: int, b: Snapshot, j: int, n: int) -> bytes:
    """One byte per entry of a run at the same addresses (a's from i, b's from j): 1 where size,
    state or arena differ; nothing compared entry by entry when the run's fields are equal."""
    mask = 0
    for fa, fb in ((a.sizes, b.sizes), (a.states, b.states), (a.arena_of, b.arena_of)):
        va, vb = memoryview(fa)[i : i + n], memoryview(fb)[j : j + n]
        if va != vb:
            mask |= int.from_bytes(bytes(map(ne, va, vb)), "little")
    return mask.to_bytes(n, "little") if mask else b""


def _align(a: Snapshot, b: Snapshot) -> Tuple[List[int], List[int], List[int], List[int]]:
    """(removed, added, changed in a, changed in b): indices of the entries only a has, only b
    has, and of those at one address in both whose size, state or arena differ, each in
    address order.  Both address lists are sorted: they are merged by runs of equal addresses
    (found by memoryview compares, no copy), stepping one entry at a time only where they
    differ; past MAX_STEPS such steps (two unrelated heaps) the rest is aligned by a set of the
    addresses both hold.  Each run's fields are compared at C speed."""
    ma, mb = memoryview(a.addrs), memoryview(b.addrs)
    na, nb = len(a), len(b)
    removed: List[int] = []
    added: List[int] = []
    ca: List[int] = []
    cb: List[int] = []
    i = j = steps = 0
    while i < na and j < nb and steps < MAX_STEPS:
        run = _same_run(ma, i, mb, j, min(na - i, nb - j))
        if run:
            differ = _changed_in_run(a, i, b, j, run)
            if differ:
                ca.extend(compress(range(i, i + run), differ))
                cb.extend(compress(range(j, j + run), differ))
            i += run
            j += run
            continue
        steps += 1
        if a.addrs[i] < b.addrs[j]:
            removed.append(i)
            i += 1
        else:
            added.append(j)
            j += 1
    if i < na and j < nb:
        _align_by_set(a, i, b, j, removed, added, ca, cb)
    else:
        removed.extend(range(i, na))
        added.extend(range(j, nb))
    return removed, added, ca, cb


def _align_by_set(a: Snapshot, lo_a: int, b: Snapshot, lo_b: int, removed, added, ca, cb) -> None:
    """_align from a's entry lo_a and b's lo_b to the end, by a set of the addresses both hold."""
    mid_a, mid_b = a.addrs[lo_a:], b.addrs[lo_b:]
    common = set(mid_a).intersection(mid_b)
    in_a = bytes(map(common.__contains__, mid_a))
    in_b = bytes(map(common.__contains__, mid_b))
    removed.extend(compress(range(lo_a, len(a)), in_a.translate(_NOT)))
    added.extend(compress(range(lo_b, len(b)), in_b.translate(_NOT)))
    differ = _unequal(a, in_a, lo_a, b, in_b, lo_b, len(common))
    ca.extend(compress(compress(range(lo_a, len(a)), in_a), differ))
    cb.extend(compress(compress(range(lo_b, len(b)), in_b), differ))


def diff(a: Snapshot, b: Snapshot, by: str = "size", lazy: bool = False) -> dict:
    """What changed from a to b: the JSON body heapsnap diff prints (and its table reads).
    lazy: "added", "removed" and "changed" are ChunkRows / ChangedRows (their rows made, or
    their JSON streamed, when asked) instead of lists of dicts."""
    removed_at, added_at, ca, cb = _align(a, b)
    added, removed = _Picked(b, added_at), _Picked(a, removed_at)
    del removed_at, added_at
    old, new = _Picked(a, ca), _Picked(b, cb)
    del ca, cb
    hdr = b.hdr
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
    with_sites = bool(a.sites or b.sites or by == "site")
    added_rows = ChunkRows(added, hdr, b.sites if with_sites else None)
    removed_rows = ChunkRows(removed, a.hdr, a.sites if with_sites else None)
    changed_rows = ChangedRows(old, new, hdr, (b.sites, a.sites) if with_sites else None)
    rows: Dict[str, object] = {"added": added_rows, "removed": removed_rows, "changed": changed_rows}
    if not lazy:
        rows = {
            k: r.rows()
            for k, r in (("added", added_rows), ("removed", removed_rows), ("changed", changed_rows))
        }
    return {
        "from": a.name,
        "to": b.name,
        **rows,
        "top": tops,
        "mmapped": mm,
        "summary": _summary(a, b, added, removed, old, new, by),
    }


def _keys(p: _Picked, by: str, *sites: Dict[int, str]) -> Iterable[object]:
    """Each picked chunk's group; by site, the first of `sites` that names it, else "-"."""
    if by == "site":
        return (next((s[x] for s in sites if s.get(x)), "-") for x in p.addrs)
    if by == "state":
        return map(STATES.__getitem__, p.states)
    if by == "arena":
        return p.arenas
    return p.sizes


def _changed_keys(
    old: _Picked, new: _Picked, by: str, new_sites: Dict[int, str], old_sites: Dict[int, str]
) -> Iterable[object]:
    if by == "state":
        return (f"{STATES[o]} -> {STATES[n]}" for o, n in zip(old.states, new.states))
    return _keys(new, by, new_sites, old_sites)


def _summary(
    a: Snapshot, b: Snapshot, added: _Picked, removed: _Picked, old: _Picked, new: _Picked, by: str
) -> dict:
    """The summary of a diff, from the fields of its added, removed and changed chunks (a loop
    over the changes only, no document per chunk)."""
    groups: Dict[object, dict] = {}

    def tally(kind: str, keys: Iterable[object], deltas: Iterable[int]) -> None:
        counts: Dict[object, int] = {}
        sums: Dict[object, int] = {}
        for k, d in zip(keys, deltas):
            counts[k] = counts.get(k, 0) + 1
            sums[k] = sums.get(k, 0) + d
        for k, c in counts.items():
            g = groups.get(k)
            if g is None:
                g = groups[k] = {"key": k, **{x: {"count": 0, "bytes": 0} for x in _KINDS}}
            g[kind]["count"] += c
            g[kind]["bytes"] += sums[k]

    tally("added", _keys(added, by, b.sites), added.sizes)
    tally("removed", _keys(removed, by, a.sites), removed.sizes)
    tally("changed", _changed_keys(old, new, by, b.sites, a.sites), map(sub, new.sizes, old.sizes))
    ordered = sorted(groups.values(), key=lambda g: (str(type(g["key"])), g["key"]))
    ma, mb = a.mallinfo(), b.mallinfo()
    return {
        "by": by,
        "groups": ordered,
        "added": {"count": len(added.sizes), "bytes": sum(added.sizes)},
        "removed": {"count": len(removed.sizes), "bytes": sum(removed.sizes)},
        "changed": {"count": len(old.sizes), "bytes": sum(new.sizes) - sum(old.sizes)},
        "top_change": sum(x["top_size"] for x in b.arenas) - sum(x["top_size"] for x in a.arenas),
        "mallinfo2_change": {k: mb[k] - ma[k] for k in ma},
    }


def state_code(name: str) -> Optional[int]:
    return _STATE_CODE.get(name)
