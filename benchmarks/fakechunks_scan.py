"""fakechunks and heapvis on a big heap, against the floor of reading the same memory.

    .venv/bin/python benchmarks/fakechunks_scan.py [N=1000000] [--runs 5]

The demo `malloc_sizes many N` (demo_c, built by `make -C demo_c`) leaves N chunks of mixed
sizes in about 500 MiB of brk heap at 1M. In one gdb session stopped at gdbext_stop, each run
drops what gdbext keeps per stop (its memory blocks and models, as a stop would) and times:

  floor       read_memory of every writable mapping in 64 MiB pieces, each piece copied to
              bytes and searched once with bytes.find: the least a scan of that memory costs
  fakechunks  `fakechunks 0x1230` (a size no chunk has: every mapping scanned to its end, the
              list walk it needs for "already free" included)
  bins        `bins` (the lists-only model heapvis builds on: every free list, no chunk walk)
  heapvis     `heapvis --count 1000` (those lists, the heap walked to past the 1000 chunks
              shown, then the chunks word by word)
  heapvis --walk  the same on the full heap model (every chunk walked first: what heapvis
              cost before it walked only what it shows)

Medians of --runs runs, taken in turn; fakechunks is also given as a ratio to the floor of the
same run, heapvis as a ratio to bins (what it adds to the lists) and to heapvis --walk. A busy
machine slows all alike; say the load (/proc/loadavg) with the figures.
"""

import argparse
import os
import re
import subprocess
import sys

from common import LOADER, ROOT, precompile_gdbext

DEMO = os.path.join(ROOT, "demo_c", "build", "malloc_sizes")

INSIDE = r'''
import gdb, statistics, time
from gdbext.inferior import memory as _m

def _maps():
    pid = gdb.selected_inferior().pid
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if perms[:2] == "rw":
                out.append((lo, hi))
    return out

def _floor():
    inf = gdb.selected_inferior()
    for lo, hi in _maps():
        pos = lo
        while pos < hi:
            end = min(hi, pos + (64 << 20))
            try:
                bytes(inf.read_memory(pos, end - pos)).find(b"\x31\x12\0\0\0\0\0\0")
            except gdb.MemoryError:
                break
            pos = end

def _time(f):
    _m._invalidate()
    t = time.perf_counter()
    f()
    return time.perf_counter() - t

KEYS = ("floor", "fakechunks", "bins", "heapvis", "walk")
res = {k: [] for k in KEYS}
for _ in range(RUNS):
    res["floor"].append(_time(_floor))
    res["fakechunks"].append(_time(lambda: gdb.execute("fakechunks 0x1230", to_string=True)))
    res["bins"].append(_time(lambda: gdb.execute("bins", to_string=True)))
    res["heapvis"].append(_time(lambda: gdb.execute("heapvis --count 1000", to_string=True)))
    res["walk"].append(_time(lambda: gdb.execute("heapvis --walk --count 1000", to_string=True)))
def _ratio(a, b):
    return round(statistics.median(x / y for x, y in zip(res[a], res[b])), 2)
mib = sum(hi - lo for lo, hi in _maps()) >> 20
print("RESULT", mib, *(round(statistics.median(res[k]), 3) for k in KEYS),
      _ratio("fakechunks", "floor"), _ratio("heapvis", "bins"), _ratio("heapvis", "walk"))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    precompile_gdbext()
    script = os.path.join(ROOT, "benchmarks", ".fakechunks_scan.py")
    with open(script, "w") as f:
        f.write(INSIDE.replace("RUNS", str(args.runs)))
    try:
        cmd = ["gdb", "-nx", "-q", "-batch", "-ex", "set confirm off", "-ex", f"source {LOADER}",
               "-ex", "set gdbext progress off", "-ex", "break gdbext_stop", "-ex", "run",
               "-ex", f"source {script}", "--args", DEMO, "many", str(args.n)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:
        os.unlink(script)
    m = re.search(r"^RESULT" + r" (\S+)" * 9, p.stdout, re.M)
    if not m:
        sys.exit(f"run failed:\n{p.stdout[-2000:]}")
    mib, floor, fake, bins, vis, walk, ratio, vis_bins, vis_walk = m.groups()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"malloc_sizes many {args.n}: {mib} MiB writable, medians of {args.runs} runs, load {' '.join(load)}")
    print(f"  floor (read + one find)   {floor} s")
    print(f"  fakechunks 0x1230         {fake} s   ({ratio}x the floor)")
    print(f"  bins                      {bins} s")
    print(f"  heapvis --count 1000      {vis} s   ({vis_bins}x bins, {vis_walk}x heapvis --walk)")
    print(f"  heapvis --walk --count 1000  {walk} s")


if __name__ == "__main__":
    main()
