"""What `heapchunks --json` cannot go below on a big heap: the parts of its work, each alone.

    .venv/bin/python benchmarks/json_floor.py [--chunks 1000000] [--runs 3]

heap_walk.py judges `heapchunks --json` against one floor: a bulk read of each heap and a walk of
its sizes.  The command does more that no design in gdb's Python can skip: it follows every free
list (a chunk's state comes from the list that holds it), turns three numbers a chunk into
decimal text, and hands the document (150 MB at a million chunks) to gdb.write.  Each of those
is timed here alone, the least way it can be done, in --runs gdbs of their own at the demo's
stop, inside gdb (perf_counter), medians:

  heapchunks --json  the command, first thing in that gdb, its output to gdb's stdout (a file)
  heap               the main heap read whole and kept, and its size fields walked to the top
                     chunk (heap_walk.py's floor)
  lists              every bin and fastbin list of main_arena followed over the kept heap
                     (lists_floor.py's walk: nothing checked)
  numbers            each chunk's address, size and user address as decimal text: one
                     %-format of a batch of them at a time, at C speed, from the model's arrays
  write              the command's own document (taken again with to_string) written to gdb's
                     stdout with gdb.write, in pieces of the size the command writes

Their sum is the floor the command is then shown against.  Needs libc's debug symbols.
"""

import json
import os
import sys

try:
    import gdb  # type: ignore[import-not-found]
except ImportError:
    gdb = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lists_floor import PIECE, heads_of, heaps_of, walk_lists

if gdb is None:
    from common import parts_in_gdbs

PARTS = ("heap", "lists", "numbers", "write")


def _size_walk(kept, first, top):
    """The size fields from the first chunk to the top chunk: how many chunks."""
    start, buf = kept[0]
    words = memoryview(buf).cast("Q")
    pos, stop, n = (first - start) >> 3, (top - start) >> 3, 0
    while pos < stop:
        size = words[pos + 1] & ~7
        if not size:
            break
        pos += size >> 3
        n += 1
    return n + (pos == stop)


def _numbers(view, hdr: int, batch: int) -> int:
    """Every chunk's address, size and user address as decimal text, a batch at a time."""
    from gdbext.model import wordmath

    made = 0
    for a in view.state.arenas:
        for seg in a.heaps:
            for lo in range(0, len(seg.addrs), batch):
                addrs = seg.addrs[lo : lo + batch]
                args: list = [0] * (3 * len(addrs))
                args[0::3] = addrs
                args[1::3] = wordmath.masked(seg.raws[lo : lo + batch], ~7)
                args[2::3] = wordmath.plus(addrs, hdr)
                made += len("%d,%d,%d;" * len(addrs) % tuple(args))
    return made


def in_gdb(out_path: str) -> None:
    import time

    from gdbext.commands.lazy_inferior import heap_view
    from gdbext.inferior.process import Target
    from gdbext.views.heapchunks import BATCH

    times = {}
    t = time.perf_counter()
    gdb.execute("heapchunks --json")
    times["heapchunks --json"] = time.perf_counter() - t

    inf = gdb.selected_inferior()
    heaps, version = heaps_of()
    lo, hi = heaps[0]
    first = lo + (-(lo + 16) & 15)
    top = int(gdb.parse_and_eval("(unsigned long)main_arena.top"))
    t = time.perf_counter()
    kept = [(lo, inf.read_memory(lo, hi - lo))]
    chunks = _size_walk(kept, first, top)
    times["heap"] = time.perf_counter() - t

    heads, fast = heads_of()
    t = time.perf_counter()
    listed = walk_lists(kept, heads, fast, version >= (2, 32))
    times["lists"] = time.perf_counter() - t
    del kept

    view = heap_view(Target())  # the command's model, kept from its run
    t = time.perf_counter()
    _numbers(view, view.layout.chunk_hdr_sz, BATCH)
    times["numbers"] = time.perf_counter() - t

    doc = gdb.execute("heapchunks --json", to_string=True)
    step = max(PIECE // 4, len(doc) * BATCH // max(chunks, 1))
    t = time.perf_counter()
    for at in range(0, len(doc), step):
        gdb.write(doc[at : at + step])
    times["write"] = time.perf_counter() - t
    with open(out_path, "w") as f:
        json.dump({"times": times, "chunks": chunks, "listed": listed, "bytes": len(doc)}, f)


def main() -> None:
    args, runs, med = parts_in_gdbs(__file__, __doc__)
    r0 = runs[0]
    print("%d chunks (%d in main_arena's lists), a %.0f MB document; medians of %d gdbs"
          % (r0["chunks"], r0["listed"], r0["bytes"] / 1e6, len(runs)))
    for k, v in med.items():
        print("%-18s %.3f s  (%s)" % (k, v, " ".join("%.3f" % r["times"][k] for r in runs)))
    floor = sum(med[k] for k in PARTS)
    print("%-18s %.3f s  (%s)" % ("floor", floor, " + ".join(PARTS)))
    print("heapchunks --json  %.2fx this floor, %.2fx the heap alone (heap_walk.py's floor)"
          % (med["heapchunks --json"] / floor, med["heapchunks --json"] / med["heap"]))


if __name__ == "__main__":
    if gdb is not None:
        in_gdb(sys.argv[1])
    else:
        main()
