"""glibc's own heap accounting, and the same figures recomputed from gdbext's JSON.

The oracle side parses what the malloc_sizes demo printed: malloc_info() XML and mallinfo2().
Our side is derived from the chunks, bins and mmapped list of `heapchunks --json` (not from its
"mallinfo2" key), with glibc's bin-index rules written out here again, for x86-64 (SIZE_SZ 8)
and i386 (SIZE_SZ 4), both with MALLOC_ALIGNMENT 16 (`Rules`), so that a wrong state, bin or
chunk boundary in the walk shows up as a disagreement with glibc. Nothing here imports gdbext.
"""

import os
import re
import xml.etree.ElementTree as ET
from collections import defaultdict

from dataclasses import dataclass

PAGE = 4096
FREE_IN_BINS = ("fastbin", "unsorted", "smallbin", "largebin")  # tcache counts as in use

# ---- glibc's size rules (malloc.c) -------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """glibc's chunk arithmetic for one ABI: SIZE_SZ 8 on x86-64, 4 on i386; MALLOC_ALIGNMENT is
    16 on both (i386's malloc-alignment.h), so i386 has one small bin fewer
    (SMALLBIN_CORRECTION) and its chunk headers sit 8 bytes before 16-aligned user memory."""

    size_sz: int
    align: int = 16

    @property
    def minsize(self) -> int:  # offsetof(fd_nextsize), aligned up
        return (4 * self.size_sz + self.align - 1) & ~(self.align - 1)

    @property
    def correction(self) -> int:  # SMALLBIN_CORRECTION
        return 1 if self.align > 2 * self.size_sz else 0

    @property
    def min_large_size(self) -> int:
        return (64 - self.correction) * self.align

    def request2size(self, req: int) -> int:
        return max(self.minsize, (req + self.size_sz + self.align - 1) & ~(self.align - 1))

    def mmapped_size(self, req: int) -> int:
        """sysmalloc's mapping for a request: ALIGN_UP(nb + SIZE_SZ, pagesize), plus the
        alignment slack where MALLOC_ALIGNMENT is not the header size (i386)."""
        slack = 0 if self.align == 2 * self.size_sz else self.align - 1
        return (self.request2size(req) + self.size_sz + slack + PAGE - 1) & ~(PAGE - 1)

    def fastbin_index(self, size: int) -> int:
        return (size >> (4 if self.size_sz == 8 else 3)) - 2

    def tcache_index(self, size: int) -> int:
        return (size - self.minsize + self.align - 1) // self.align

    def smallbin_index(self, size: int) -> int:
        return (size >> 4) + self.correction

    def largebin_index(self, size: int) -> int:
        first = (6, 48, 48) if self.size_sz == 8 else (6, 45, 49)  # largebin_index_32_big
        for shift, limit, base in (first, (9, 20, 91), (12, 10, 110), (15, 4, 119), (18, 2, 124)):
            if size >> shift <= limit:
                return base + (size >> shift)
        return 126

    def bin_index(self, size: int) -> int:
        return self.smallbin_index(size) if size < self.min_large_size else self.largebin_index(size)

    def expected_bin_label(self, state: str, size: int) -> str:
        """The list glibc keeps a free chunk of this size on, as gdbext labels it (tcache aside)."""
        if state == "fastbin":
            return f"fastbin[{self.fastbin_index(size)}]"
        if state in ("smallbin", "largebin"):
            assert (state == "smallbin") == (size < self.min_large_size), (state, size)
            return f"{state}[{self.bin_index(size)}]"
        if state == "unsorted":
            return "unsorted"
        raise ValueError(state)


X86_64 = Rules(8)
I386 = Rules(4)


def glibc_key(glibc: str = None) -> tuple:
    """(2, 43) for "2.43"; None means the glibc the tests run on (the host's)."""
    glibc = glibc or os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    return tuple(int(x) for x in glibc.split(".")[:2])


# x86-64's, for the tests of 64-bit demos
SIZE_SZ = X86_64.size_sz
ALIGN = X86_64.align
MINSIZE = X86_64.minsize
MIN_LARGE_SIZE = X86_64.min_large_size
request2size = X86_64.request2size
mmapped_size = X86_64.mmapped_size
fastbin_index = X86_64.fastbin_index
tcache_index = X86_64.tcache_index
smallbin_index = X86_64.smallbin_index
largebin_index = X86_64.largebin_index
bin_index = X86_64.bin_index
expected_bin_label = X86_64.expected_bin_label


def raw_size(c: dict) -> int:
    """The size field with its flag bits, rebuilt from the JSON (malloc_info sums these)."""
    return c["size"] | (1 if c["prev_inuse"] else 0) | (2 if c["mmapped"] else 0) | \
        (4 if c["non_main_arena"] else 0)


# ---- the oracle: what the demo printed ---------------------------------------------------------

def malloc_info_text(transcript: str) -> str:
    """The last malloc_info block the demo printed."""
    blocks = re.findall(r"GDBEXT_MALLOC_INFO_BEGIN\n(.*?)GDBEXT_MALLOC_INFO_END", transcript, re.S)
    assert blocks, "the demo printed no malloc_info block"
    # gdb writes its thread notices to the same terminal, in pieces that can land anywhere
    # in the program's output: run gdb with "set print thread-events off"
    assert "Thread 0x" not in blocks[-1], "a gdb thread notice is mixed into the XML"
    return "\n".join(line for line in blocks[-1].splitlines() if line.strip().startswith("<"))


def _group(e) -> tuple:
    return tuple(int(e.get(k)) for k in ("from", "to", "total", "count"))


def _total(node, kind):
    e = node.find(f"total[@type='{kind}']")
    if e is None and kind == "fast":
        return (0, 0)  # glibc >= 2.43 has no fastbins, and malloc_info no "fast" total
    return (int(e.get("count")), int(e.get("size")))


def parse_malloc_info(xml_text: str) -> dict:
    """{"heaps": [per arena, in malloc_info's order: sizes, unsorted, fast, rest, system],
    "fast", "rest", "mmap", "system"} from malloc_info(0, fp)'s XML."""
    root = ET.fromstring(xml_text)
    heaps = []
    for h in root.findall("heap"):
        sizes = h.find("sizes")
        unsorted = sizes.find("unsorted")
        heaps.append({
            "nr": int(h.get("nr")),
            "sizes": [_group(e) for e in sizes.findall("size")],
            "unsorted": _group(unsorted) if unsorted is not None else None,
            "fast": _total(h, "fast"), "rest": _total(h, "rest"),
            "system": int(h.find("system[@type='current']").get("size")),
            "system_max": int(h.find("system[@type='max']").get("size")),
        })
    return {"heaps": heaps, "fast": _total(root, "fast"), "rest": _total(root, "rest"),
            "mmap": _total(root, "mmap"),
            "system": int(root.find("system[@type='current']").get("size"))}


MALLINFO2 = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "fsmblks", "uordblks", "fordblks",
             "keepcost")


def mallinfo2_facts(facts: dict) -> dict:
    return {k: facts[f"mallinfo2.{k}"] for k in MALLINFO2}


def mmapped_bytes_less_drift(glibc_bytes: int, our_bytes: int, glibc: str = None) -> int:
    """glibc's count of mmapped bytes (malloc_info's mmap total, mallinfo2's hblkhd), less
    glibc 2.43's own drift: its mremap_chunk adds 16 bytes to mp_.mmapped_mem per mremap, so
    from 2.43 glibc's figure may exceed what its mmapped chunks hold by a multiple of 16."""
    drift = glibc_bytes - our_bytes
    if glibc_key(glibc) >= (2, 43) and 0 < drift < 1 << 16 and drift % 16 == 0:
        return our_bytes
    return glibc_bytes


def without_drift(glibc_figures: dict, ours: dict, glibc: str = None) -> dict:
    """malloc_info's figures (key "mmap": (count, bytes)) or mallinfo2's (key "hblkhd") from
    glibc, with mmapped_bytes_less_drift applied."""
    out = dict(glibc_figures)
    if "mmap" in out:
        out["mmap"] = (out["mmap"][0], mmapped_bytes_less_drift(out["mmap"][1], ours["mmap"][1],
                                                               glibc))
    if "hblkhd" in out:
        out["hblkhd"] = mmapped_bytes_less_drift(out["hblkhd"], ours["hblkhd"], glibc)
    return out


# ---- our side: the same figures from heapchunks --json -----------------------------------------

def chunks_of(arena: dict, state: str):
    return [c for c in arena["chunks"] if c["state"] == state]


def arena_system_bytes(arena: dict) -> int:
    """What the arena got from the system, from the heaps the walk covered."""
    return sum(h["end"] - h["start"] for h in arena["heaps"])


def top_chunk(arena: dict) -> dict:
    tops = chunks_of(arena, "top")
    assert len(tops) == 1, f"arena {arena['address']:#x}: {len(tops)} top chunks"
    return tops[0]


def malloc_info_from_json(doc: dict, glibc: str = None, rules: Rules = X86_64) -> dict:
    """malloc_info's figures, recomputed from heapchunks --json as glibc `glibc`'s (default: the
    host's) __malloc_info does, with `rules`' chunk arithmetic (x86-64's or i386's)."""
    heaps = []
    for nr, a in enumerate(doc["arenas"]):
        fast = defaultdict(list)
        regular = defaultdict(list)
        for c in chunks_of(a, "fastbin"):
            fast[rules.fastbin_index(c["size"])].append(c)
        for state in ("smallbin", "largebin"):
            for c in chunks_of(a, state):
                regular[rules.bin_index(c["size"])].append(c)
        sizes = []
        for i in sorted(fast):  # every chunk of a fastbin is taken to have the first's size
            size, n = fast[i][0]["size"], len(fast[i])
            sizes.append((size - (rules.align - 1), size, n * size, n))
        for i in sorted(regular):
            raws = [raw_size(c) for c in regular[i]]
            sizes.append((min(raws), max(raws), sum(raws), len(raws)))
        uns = [raw_size(c) for c in chunks_of(a, "unsorted")]
        nfast = sum(len(v) for v in fast.values())
        fast_bytes = sum(c["size"] for v in fast.values() for c in v)
        rest_raw = [raw_size(c) for v in regular.values() for c in v] + uns
        top = top_chunk(a)["size"]
        heaps.append({
            "nr": nr, "sizes": sizes,
            "unsorted": (min(uns), max(uns), sum(uns), len(uns)) if uns else None,
            "fast": (nfast, fast_bytes), "rest": (1 + len(rest_raw), top + sum(rest_raw)),
            "system": arena_system_bytes(a),
        })
    mm = doc["mmapped"]
    return {"heaps": heaps,
            "fast": (sum(h["fast"][0] for h in heaps), sum(h["fast"][1] for h in heaps)),
            "rest": (sum(h["rest"][0] for h in heaps), sum(h["rest"][1] for h in heaps)),
            "mmap": (len(mm), sum(mapping_bytes(m, glibc, rules) for m in mm)),
            "system": sum(h["system"] for h in heaps)}


def mapping_bytes(m: dict, glibc: str = None, rules: Rules = X86_64) -> int:
    """What munmap would release for an mmapped chunk: prev_size (its offset) + size, and from
    glibc 2.43 on, whose size field leaves out the chunk header, + 2 * SIZE_SZ."""
    header = 2 * rules.size_sz if glibc_key(glibc) >= (2, 43) else 0
    return m["address"] - m["mapping_start"] + m["size"] + header


def mallinfo2_from_json(doc: dict, glibc: str = None) -> dict:
    """mallinfo2() recomputed from heapchunks --json as glibc `glibc`'s (default: the host's)
    int_mallinfo does."""
    out = dict.fromkeys(MALLINFO2, 0)
    for a in doc["arenas"]:
        fast = chunks_of(a, "fastbin")
        regular = [c for s in ("unsorted", "smallbin", "largebin") for c in chunks_of(a, s)]
        fast_bytes = sum(c["size"] for c in fast)
        avail = top_chunk(a)["size"] + fast_bytes + sum(c["size"] for c in regular)
        system = arena_system_bytes(a)
        out["arena"] += system
        out["ordblks"] += 1 + len(regular)
        out["smblks"] += len(fast)
        out["fsmblks"] += fast_bytes
        out["fordblks"] += avail
        out["uordblks"] += system - avail
        if a["main"]:
            out["keepcost"] = top_chunk(a)["size"]
    out["hblks"] = len(doc["mmapped"])
    out["hblkhd"] = sum(mapping_bytes(m, glibc) for m in doc["mmapped"])
    return out


# ---- structural checks of the walk ---------------------------------------------------------------

def check_tiling(doc: dict, rules: Rules = X86_64) -> None:
    """Each heap's chunks follow one another with no gap or overlap, from the first chunk to the
    heap's end, and the arena's top chunk is the last one of its newest heap."""
    for a in doc["arenas"]:
        assert a["chunks"], f"arena {a['address']:#x} lists no chunk"
        by_heap = defaultdict(list)
        for c in a["chunks"]:
            owner = [h for h in a["heaps"] if h["start"] <= c["address"] < h["end"]]
            assert len(owner) == 1, f"chunk {c['address']:#x} is in {len(owner)} heaps"
            by_heap[owner[0]["start"]].append(c)
        for h in a["heaps"]:
            cs = by_heap[h["start"]]
            for prev, nxt in zip(cs, cs[1:]):
                assert prev["address"] + prev["size"] == nxt["address"], (prev, nxt)
            # An older heap of an arena ends in sysmalloc's fenceposts, the last of size 0:
            # its header is the heap's last bytes, but for i386's 8 bytes of slack (the old
            # top ended 8 bytes past a multiple of 16, and the fenceposts start at one).
            last = cs[-1]
            fence = last["state"] == "fencepost"
            span = last["size"] or (2 * rules.size_sz if fence else 0)
            slack = rules.align - 2 * rules.size_sz if fence else 0
            assert last["address"] + span + slack == h["end"], (h, last)
            for c in cs:
                assert c["user_address"] == c["address"] + 2 * rules.size_sz
                # User memory is aligned, so on i386 a header sits 8 bytes before a multiple
                # of 16; there the chunks that end where the heap's pages end (top, and the
                # second of the two fenceposts, each one header long) are the exceptions.
                edge = c["state"] in ("top", "fencepost") and rules.size_sz == 4
                assert c["user_address"] % rules.align == 0 or c["state"] == "fencepost" and edge, c
                assert c["size"] % rules.align == 0 or edge, c
                assert c["size"] >= rules.minsize or c["state"] == "fencepost", c
                # NON_MAIN_ARENA: never in main_arena; on every chunk another arena handed out
                if a["main"] or c["state"] == "used":
                    assert c["non_main_arena"] == (not a["main"]), c
        top = top_chunk(a)
        assert top["address"] == a["top"] and top["size"] == a["top_size"]
        assert any(by_heap[h["start"]][-1] is top for h in a["heaps"]), "top is not last"


def check_bins_agree(doc: dict, bins: dict, rules: Rules = X86_64) -> None:
    """The free lists of `bins --json` hold exactly the chunks `heapchunks --json` gives a free
    state, each on the list glibc's size rules pick."""
    for a, b in zip(doc["arenas"], bins["arenas"]):
        assert a["address"] == b["address"]
        for state, key in (("fastbin", "fastbins"), ("unsorted", "unsorted"),
                           ("smallbin", "smallbins"), ("largebin", "largebins")):
            listed = {c: bl["label"] for bl in b[key] for c in bl["chunks"]}
            walked = {c["address"]: c for c in chunks_of(a, state)}
            assert set(listed) == set(walked), (hex(a["address"]), state)
            for addr, c in walked.items():
                assert c["bin"] == listed[addr] == rules.expected_bin_label(state, c["size"]), c
            for bl in b[key]:
                assert bl["complete"] and bl["count"] == len(bl["chunks"]), bl
    in_tcache = {}
    for t in bins["tcache"]:
        for bl in t["bins"]:
            assert bl["complete"] and bl["count"] == len(bl["chunks"]), bl
            for c in bl["chunks"]:
                assert c not in in_tcache, f"{c:#x} in two tcache lists"
                in_tcache[c] = (t["thread"], bl["index"])
    walked = {c["address"]: c for a in doc["arenas"] for c in chunks_of(a, "tcache")}
    assert set(in_tcache) == set(walked)
    for addr, (thread, index) in in_tcache.items():
        assert rules.tcache_index(walked[addr]["size"]) == index
        assert walked[addr]["bin"] == f"tcache[thread {thread}][{index}]"


def thread_tids(info_threads: str) -> dict:
    """gdb thread number -> LWP id, from `info threads` (gdbserver's threads read "Thread PID.LWP")."""
    return {int(n): int(lwp or bare or remote) for n, lwp, bare, remote in
            re.findall(r"^\*?\s*(\d+)\s+(?:Thread 0x[0-9a-f]+ \(LWP (\d+)\)|LWP (\d+)|Thread \d+\.(\d+))",
                       info_threads, re.M)}
