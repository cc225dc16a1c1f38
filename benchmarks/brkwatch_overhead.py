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
import subprocess
import sys
import time

from common import LOADER, ROOT, precompile_gdbext

BUILD = os.path.join(ROOT, "demo_c", "build")

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
TIMER = ("python import time; gdb.set_convenience_variable('t0', str(time.perf_counter()))",
         "python print('ELAPSED', time.perf_counter() - float(gdb.convenience_variable('t0').string()))")


def native(argv):
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def under_gdb(argv, setup):
    cmd = ["gdb", "-nx", "-q", "-batch", "-ex", "set confirm off", "-ex", "set pagination off",
           "-ex", f"source {LOADER}"]
    if setup:
        cmd += ["-ex", setup]
    cmd += ["-ex", TIMER[0], "-ex", "run", "-ex", TIMER[1], "-ex", "brkwatch status",
            "--args", *argv]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"^ELAPSED (\S+)", p.stdout, re.M)
    if not m or "exited normally" not in p.stdout:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{p.stdout[-2000:]}")
    ev = re.search(r"(\d+) event\(s\)", p.stdout)
    return float(m.group(1)), int(ev.group(1)) if ev and setup else 0


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
