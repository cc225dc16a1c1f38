"""What brkwatch costs a running program: medians of repeated runs under gdb, per method.

    .venv/bin/python benchmarks/brkwatch_overhead.py [RUNS] [--quick]

Workloads (demo_c, built by `make -C demo_c`):
  small mallocs    malloc_sizes many 200000: 200 000 small mallocs, few changes of the break
  sbrk steps       sbrk_grow steps 5000: 5 001 changes of the break, nothing else
Each is timed from `run` to exit inside one gdb session (gdb's start-up excluded): without
brkwatch, then with `brkwatch on --method M` for every method, and with --mmap.  The program's
own run time without gdb is shown for reference.  Prints a table of medians.
"""

import os
import re
import statistics
import sys

from common import BUILD, native, precompile_gdbext, timed_gdb_run


WORKLOADS = [
    ("small mallocs", ["malloc_sizes", "many", "200000"]),
    ("sbrk steps", ["sbrk_grow", "steps", "5000"]),
]
CONFIGS = [
    ("no brkwatch", None),
    ("watch", "brkwatch on --method watch"),
    ("break", "brkwatch on --method break"),
    ("syscall", "brkwatch on --method syscall"),
    ("auto --mmap", "brkwatch on --mmap"),
]
def under_gdb(argv, setup):
    out, seconds, _ = timed_gdb_run(argv, setup, "brkwatch status")
    ev = re.search(r"(\d+) event\(s\)", out)
    return seconds, int(ev.group(1)) if ev and setup else 0


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 5
    precompile_gdbext()
    print(f"median of {runs} runs; times from `run` to exit inside gdb (start-up excluded)")
    print(f"{'workload':<14} {'config':<12} {'events':>7} {'time':>9} {'vs gdb':>8} {'per event':>10}")
    for title, argv in WORKLOADS:
        argv = [os.path.join(BUILD, argv[0])] + argv[1:]
        nat = statistics.median(native(argv) for _ in range(runs))
        print(f"{title:<14} {'(no gdb)':<12} {'':>7} {nat * 1000:7.1f}ms")
        base = None
        for name, setup in CONFIGS:
            times, events = [], 0
            for _ in range(runs):
                t, events = under_gdb(argv, setup)
                times.append(t)
            med = statistics.median(times)
            if base is None:
                base = med
                print(f"{title:<14} {name:<12} {'':>7} {med * 1000:7.1f}ms {'1.00x':>8}")
                continue
            per = f"{(med - base) / events * 1e6:8.0f}us" if events else "-"
            print(f"{title:<14} {name:<12} {events:>7} {med * 1000:7.1f}ms {med / base:7.2f}x {per:>10}")


if __name__ == "__main__":
    main()
