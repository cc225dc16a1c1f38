"""What allocwatch costs a running program: medians of repeated runs under gdb, per way of
reading results and per sampling rate.

    .venv/bin/python benchmarks/allocwatch_overhead.py [RUNS] [CALLS]

Workload (demo_c, built by `make -C demo_c`): `alloc_sites bench N`, N malloc/free pairs and
nothing else (2N allocator calls).  Timed from `run` to exit inside one gdb session (gdb's
start-up excluded): without allocwatch (the floor), then with each configuration, the
configurations taken in turn within each round.  Per call:
(time - floor) / 2N; the same for the CPU time of gdb and the program (start-up included in
both, so it cancels), which the machine's other load does not inflate as it does wall time.
The program's own run time without gdb is shown for reference.
"""

import os
import re
import statistics
import sys

from common import BUILD, native, precompile_gdbext, timed_gdb_run


CONFIGS = [
    ("no allocwatch", None),
    ("address", "allocwatch on"),
    ("call", "allocwatch on --returns call"),
    ("finish", "allocwatch on --returns finish"),
    ("address --bt 8", "allocwatch on --bt 8"),
    ("address --sample 16", "allocwatch on --returns address --sample 16"),
    ("call --sample 16", "allocwatch on --sample 16"),
    ("finish --sample 16", "allocwatch on --returns finish --sample 16"),
]
def under_gdb(argv, setup):
    out, seconds, cpu = timed_gdb_run(argv, setup, "allocwatch status")
    ev = re.search(r"(\d+) events? \(", out)
    return seconds, cpu, int(ev.group(1)) if ev and setup else 0


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 5
    n = int(args[1]) if len(args) > 1 else 20000
    precompile_gdbext()
    argv = [os.path.join(BUILD, "alloc_sites"), "bench", str(n)]
    calls = 2 * n
    print(f"median of {runs} runs of alloc_sites bench {n} ({calls} allocator calls); times from "
          f"`run` to exit inside gdb (start-up excluded); load average {os.getloadavg()[0]:.1f}")
    print(f"{'config':<22} {'recorded':>9} {'time':>10} {'vs floor':>9} {'per call':>10} "
          f"{'cpu':>10} {'cpu/call':>10}")
    nat = statistics.median(native(argv) for _ in range(runs))
    print(f"{'(no gdb)':<22} {'':>9} {nat * 1000:8.1f}ms")
    # Round robin over the configurations, so that a change of the machine's load touches
    # each of them alike.
    times = {name: [] for name, _ in CONFIGS}
    cpus = {name: [] for name, _ in CONFIGS}
    events = {}
    for _ in range(runs):
        for name, setup in CONFIGS:
            t, cpu, events[name] = under_gdb(argv, setup)
            times[name].append(t)
            cpus[name].append(cpu)
    base = statistics.median(times[CONFIGS[0][0]])
    base_cpu = statistics.median(cpus[CONFIGS[0][0]])
    for name, _ in CONFIGS:
        med, cpu = statistics.median(times[name]), statistics.median(cpus[name])
        if name == CONFIGS[0][0]:
            print(f"{name:<22} {'':>9} {med * 1000:8.1f}ms {'1.00x':>9} {'':>10} {cpu * 1000:8.1f}ms")
            continue
        per = (med - base) / calls * 1e6
        per_cpu = (cpu - base_cpu) / calls * 1e6
        print(
            f"{name:<22} {events[name]:>9} {med * 1000:8.1f}ms {med / base:8.2f}x {per:8.1f}us "
            f"{cpu * 1000:8.1f}ms {per_cpu:8.1f}us"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
