"""What `arenas` and `bins` cannot go below on a big heap: the parts of their work, each alone.

    .venv/bin/python benchmarks/lists_floor.py [--chunks 1000000] [--runs 3]

`arenas` and `bins` walk the free lists, not every chunk; on `malloc_sizes many N` the lists hold
a third of the chunks, spread over the whole heap, and the unsorted bin goes to and fro over it,
so a walk reads the whole heap and keeps what it comes back to.  In --runs gdbs of their own, at
the demo's stop, timed inside gdb (perf_counter: gdb's start-up is in no figure), medians:

  arenas      the command, first thing in that gdb (its output to a string), as a user runs it
  bins --json the same, next, its model built again
  read        the main heap read in 1 MiB pieces, none kept (gdb's read_memory)
  read+keep   the main heap read whole and kept (what a walk that comes back needs, unless it
              reads it again): the kernel hands gdb a fresh page for every page kept
  walk        every bin and fastbin list of main_arena followed over the kept heap: one unpack
              of a header and three appends per chunk, nothing checked and no bound (the least a
              walk in Python does)

The heap's bounds (mp_.sbrk_base, main_arena.system_mem) and the lists' heads come from libc's
debug symbols (libc6-dbg), so this needs them.  The floor of a lists-only command is read+keep
plus walk; gdbext's own commands are not used before `arenas` runs.
"""

import sys

try:
    import gdb  # type: ignore[import-not-found]
except ImportError:
    gdb = None

if gdb is None:
    from common import parts_in_gdbs

PIECE = 1 << 20


def heaps_of():
    """The main heap's bounds and glibc's version, from libc's debug symbols."""
    start = int(gdb.parse_and_eval("(unsigned long)mp_.sbrk_base"))
    size = int(gdb.parse_and_eval("(unsigned long)main_arena.system_mem"))
    major = int(gdb.parse_and_eval("(int)__libc_version[0] - 48"))
    minor = int(gdb.parse_and_eval("(int)__libc_version[2] - 48")) * 10 + int(
        gdb.parse_and_eval("(int)__libc_version[3] - 48")
    )
    return [(start, start + size)], (major, minor)


def heads_of():
    """(first chunk, the bin's own address: where the list ends) of each non-empty bin, and the
    first chunk of each fastbin, of main_arena."""
    bins = gdb.parse_and_eval("main_arena.bins")
    first = int(gdb.parse_and_eval("(unsigned long)&main_arena.bins[0]")) - 16  # bin_at(1)
    heads = []
    for i in range(1, 127):
        fd, at = int(bins[2 * (i - 1)]), first + 16 * (i - 1)
        if fd != at:
            heads.append((fd, at))
    fast = [int(gdb.parse_and_eval("(unsigned long)main_arena.fastbinsY[%d]" % i)) for i in range(10)]
    return heads, [p for p in fast if p]


def walk_lists(kept, heads, fast, safe_linking):
    """Follow every list over the kept heaps; the number of chunks followed."""
    from struct import Struct

    three, two = Struct("<QQQ").unpack_from, Struct("<QQ").unpack_from
    n = 0
    for p, end in heads:
        chunks, sizes, bks = [], [], []
        ca, sa, ba = chunks.append, sizes.append, bks.append
        lo = hi = 0
        buf = b""
        while p != end:
            if not lo <= p < hi:
                lo, buf = next((s, b) for s, b in kept if s <= p < s + len(b))
                hi = lo + len(buf) - 32
            raw, fd, bk = three(buf, p - lo + 8)
            ca(p)
            sa(raw)
            ba(bk)
            p = fd
        n += len(chunks)
    for p in fast:
        chunks, sizes = [], []
        lo = hi = 0
        while p:
            if not lo <= p < hi:
                lo, buf = next((s, b) for s, b in kept if s <= p < s + len(b))
                hi = lo + len(buf) - 32
            raw, stored = two(buf, p - lo + 8)
            chunks.append(p)
            sizes.append(raw)
            p = ((p + 16) >> 12) ^ stored if safe_linking else stored
        n += len(chunks)
    return n


def in_gdb(out_path: str) -> None:
    import json
    import time

    from gdbext.inferior import process as facts

    times = {}
    for command in ("arenas", "bins --json"):
        facts._facts_cache.clear()  # bins builds the stop's model again, as in a gdb of its own
        t = time.perf_counter()
        gdb.execute(command, to_string=True)
        times[command] = time.perf_counter() - t
    inf = gdb.selected_inferior()
    heaps, version = heaps_of()
    safe = version >= (2, 32)
    heads, fast = heads_of()
    t = time.perf_counter()
    for lo, hi in heaps:
        for a in range(lo, hi, PIECE):
            inf.read_memory(a, min(PIECE, hi - a))
    times["read"] = time.perf_counter() - t
    t = time.perf_counter()
    kept = [(lo, inf.read_memory(lo, hi - lo)) for lo, hi in heaps]
    times["read+keep"] = time.perf_counter() - t
    t = time.perf_counter()
    chunks = walk_lists(kept, heads, fast, safe)
    times["walk"] = time.perf_counter() - t
    mib = sum(hi - lo for lo, hi in heaps) >> 20
    with open(out_path, "w") as f:
        json.dump({"times": times, "chunks": chunks, "mib": mib}, f)


def main() -> None:
    args, runs, med = parts_in_gdbs(__file__, __doc__)
    print("%d chunks: a %d MiB heap, %d chunks in its lists; medians of %d gdbs"
          % (args.chunks, runs[0]["mib"], runs[0]["chunks"], len(runs)))
    for k, v in med.items():
        print("%-12s %.3f s  (%s)" % (k, v, " ".join("%.3f" % r["times"][k] for r in runs)))
    floor = med["read+keep"] + med["walk"]
    print("%-12s %.3f s  (read+keep + walk)" % ("floor", floor))
    for k in ("arenas", "bins --json"):
        print("%-12s %.2fx the floor" % (k, med[k] / floor))


if __name__ == "__main__":  # gdb sources this file as __main__ too; json_floor.py imports it
    if gdb is not None:
        in_gdb(sys.argv[1])
    else:
        main()
