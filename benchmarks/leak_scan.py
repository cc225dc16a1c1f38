"""heapleaks --json and heaprefs on a million used chunks and 100 MiB of roots, against a floor.

    .venv/bin/python benchmarks/leak_scan.py [--chunks 1000000] [--roots-mib 100] [--runs 3]

The demo `leaks bench N MIB` (demo_c) leaves N used chunks of 24 bytes, every tenth leaked, the
others each pointing at another and held by MIB MiB of an anonymous mapping full of pointers
to them, and stops at gdbext_stop.  Every figure is a whole `gdb -nx -batch` run (start gdb, load
gdbext, run the demo to its stop, run one command with its output to a file, exit) minus the
median of the same run without the command.  Medians of --runs runs, configurations in turn.

The floor, measured the same way: one read_memory of every range heapleaks scans (its roots
and heaps, listed by an earlier run; gdb turns ASLR off, so they stay put) and one pass that
counts the 8-byte words whose value falls inside a heap: the cheapest scan there is in Python.

Peak memory: gdb's own VmHWM, read from /proc at the end of the run.
numpy: the scan uses it when gdb's Python can import it (model/leaks_numpy.py); --no-numpy
sets GDBEXT_NUMPY=0 for every run, so the pure-Python scan is timed.
Targets (issue 14): heapleaks --json under 5 s at 1M chunks and within 4x of the floor, gdb's
peak under 1 GiB; heaprefs under 1 s.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from common import LOADER, ROOT, precompile_gdbext

DEMO = os.path.join(ROOT, "demo_c", "build", "leaks")

# Runs inside gdb: lists what heapleaks scans (roots, heaps), for the floor.
RANGES = r"""
import json
from gdbext.inferior.process import Target
from gdbext.inferior import leaks
t = Target()
inputs = leaks.leak_inputs(t)
roots = [(r.start, r.end) for r in inputs.roots]
heaps = [(s.first_chunk, s.end) for a in inputs.view.state.arenas for s in a.heaps]
heaps += [(m.address, m.address + m.size) for m in inputs.view.state.mmapped]
first = inputs.nodes.start[len(inputs.nodes) // 2] if len(inputs.nodes) else 0
open(%(out)r, "w").write(json.dumps({"roots": roots, "heaps": heaps, "first": first}))
"""

# Runs inside gdb: one bulk read of each range, one pass counting words inside a heap.
FLOOR = r"""
import gdb, time
def _floor(ranges, heaps):
    t0 = time.perf_counter()
    inf = gdb.selected_inferior()
    n = 0
    lo = min(h[0] for h in heaps)
    hi = max(h[1] for h in heaps)
    for start, end in ranges:
        a = start
        while a < end:
            b = min(end, a + (16 << 20))
            try:
                words = memoryview(inf.read_memory(a, b - a)).cast("Q")
            except gdb.MemoryError:
                a = b
                continue
            n += sum(1 for w in words if lo <= w < hi)
            a = b
    open(%(out)r, "w").write("%%d %%f\n" %% (n, time.perf_counter() - t0))
_floor(%(ranges)r, %(heaps)r)
"""


NUMPY_USED = "python from gdbext.model import leaks_numpy; print('NUMPY', leaks_numpy.available())"


def read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def gdb_argv(args, command, hwm_file: str):
    argv = ["gdb", "-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
            "-ex", "set width 0", "-ex", "set style enabled off",
            "-ex", "set disable-randomization on", "-ex", f"source {LOADER}",
            "-ex", "break gdbext_stop", "-ex", f"run bench {args.chunks} {args.roots_mib} > /dev/null"]
    if command:
        argv += ["-ex", command]
    argv += ["-ex", "python import re; open(%r, 'w').write(re.search(r'VmHWM:\\s*(\\d+)', "
             "open('/proc/self/status').read()).group(1))" % hwm_file, DEMO]
    return argv


def run(tmp, args, command, expect=None):
    """(seconds, CPU seconds of gdb and the demo, gdb's peak KiB, stdout) of one batch run."""
    out, err, hwm = (os.path.join(tmp, f) for f in ("out.txt", "err.txt", "hwm.txt"))
    if os.path.exists(hwm):
        os.unlink(hwm)
    with open(out, "w") as fo, open(err, "w") as fe:
        t = time.perf_counter()
        proc = subprocess.Popen(gdb_argv(args, command, hwm), stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                cwd=tmp)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        took = time.perf_counter() - t
        cpu = usage.ru_utime + usage.ru_stime
    text = read(out)
    if "Breakpoint 1, gdbext_stop" not in text or (expect and expect not in text):
        raise SystemExit(f"run failed: {command}\nstdout ends:\n{text[-1500:]}\nstderr:\n"
                         f"{read(err)[-1500:]}")
    return took, cpu, int(read(hwm)), text


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=1_000_000)
    p.add_argument("--roots-mib", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-numpy", action="store_true", help="time the scan without numpy (GDBEXT_NUMPY=0)")
    args = p.parse_args()
    if args.no_numpy:
        os.environ["GDBEXT_NUMPY"] = "0"
    precompile_gdbext()
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "demo_c")], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="gdbext-leak-scan-") as tmp:
        ranges_py, ranges_out = os.path.join(tmp, "ranges.py"), os.path.join(tmp, "ranges.json")
        write(ranges_py, RANGES % {"out": ranges_out})
        run(tmp, args, f"source {ranges_py}")
        got = json.loads(read(ranges_out))
        floor_py, floor_out = os.path.join(tmp, "floor.py"), os.path.join(tmp, "floor.txt")
        ranges = got["roots"] + got["heaps"]
        write(floor_py, FLOOR % {"out": floor_out, "ranges": ranges, "heaps": got["heaps"]})
        _, _, _, text = run(tmp, args, "heapleaks --summary", "leaked chunk")
        print("heapleaks --summary:", re.search(r"^\d+ leaked.*$", text, re.M).group(0), file=sys.stderr)
        _, _, _, text = run(tmp, args, NUMPY_USED, "NUMPY ")
        print("scan:", "numpy" if "NUMPY True" in text else "pure Python", file=sys.stderr)
        configs = [
            ("(no command)", None, None),
            ("floor", f"source {floor_py}", None),
            ("heapleaks --json", "heapleaks --json", '"command":"heapleaks"'),
            ("heaprefs ADDR", f"heaprefs {got['first']:#x}", "referrer"),
        ]
        times = {name: [] for name, _, _ in configs}
        cpus = {name: [] for name, _, _ in configs}
        peaks = {name: [] for name, _, _ in configs}
        for _ in range(args.runs):
            for name, command, expect in configs:
                took, cpu, peak, _ = run(tmp, args, command, expect)
                times[name].append(took)
                cpus[name].append(cpu)
                peaks[name].append(peak)
    base, base_cpu = statistics.median(times["(no command)"]), statistics.median(cpus["(no command)"])
    floor = statistics.median(times["floor"]) - base
    floor_cpu = statistics.median(cpus["floor"]) - base_cpu
    print(f"{args.chunks} used chunks, {args.roots_mib} MiB of roots; medians of {args.runs} runs, "
          "less the run without a command; CPU: gdb's and the demo's user + system time")
    print(f"{'command':<18} {'seconds':>8} {'x floor':>8} {'CPU s':>8} {'x floor':>8} {'gdb MiB':>8}")
    for name, _, _ in configs[1:]:
        t = statistics.median(times[name]) - base
        c = statistics.median(cpus[name]) - base_cpu
        print(f"{name:<18} {t:8.2f} {t / floor if floor > 0 else 0:8.2f} {c:8.2f} "
              f"{c / floor_cpu if floor_cpu > 0 else 0:8.2f} {max(peaks[name]) / 1024:8.0f}")


if __name__ == "__main__":
    main()
