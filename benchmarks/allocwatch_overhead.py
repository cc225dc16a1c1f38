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
import resource
import statistics
import subprocess
import sys
import time

from common import LOADER, ROOT, precompile_gdbext

BUILD = os.path.join(ROOT, "demo_c", "build")

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
    cmd += ["-ex", TIMER[0], "-ex", "run", "-ex", TIMER[1], "-ex", "allocwatch status",
            "--args", *argv]
    before = _children_cpu()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cpu = _children_cpu() - before
    m = re.search(r"^ELAPSED (\S+)", p.stdout, re.M)
    if not m or "exited normally" not in p.stdout:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{p.stdout[-2000:]}")
    ev = re.search(r"(\d+) events? \(", p.stdout)
    return float(m.group(1)), cpu, int(ev.group(1)) if ev and setup else 0


def _children_cpu() -> float:
    """User and system CPU of the reaped children (gdb, and the program gdb reaped): what a
    run cost the machine, which the load of other work does not inflate as it does wall time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


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
