"""heapchunks, bins and arenas on big heaps, against the floor of one bulk read and a size walk.

    .venv/bin/python benchmarks/heap_walk.py [--sizes 10k,100k,1M] [--runs 3] [--json]

The demo `malloc_sizes many N` (demo_c, built by `make -C demo_c`) leaves N chunks of mixed
sizes (16..1024 bytes requested) with every third one freed, so tcache, fastbins, the unsorted,
small and large bins all fill, and stops at gdbext_stop.  Every figure is a whole
`gdb -nx -batch` run (start gdb, load gdbext, run the demo to gdbext_stop, run one command with
its output to a file, exit) minus the median of the same run without the command, so gdb's
start-up and the demo's own run time cancel out.  Medians of --runs runs, the configurations
taken in turn so that a slow moment of a shared machine spreads over all of them.  "cpu" is the
same difference in CPU seconds (user + system of gdb and the demo, from getrusage of the
children), which a busy machine disturbs less than the wall time.

The floor, measured the same way: one read_memory of each arena heap (its bounds from an earlier
`arenas --json` run; gdb turns ASLR off, so they stay put) and a memoryview walk over the size
fields to the top chunk, nothing else.  Its chunk count is checked against `arenas --json`.

Peak memory: "gdb MiB" is gdb's own VmHWM, read from /proc at the end of the run; "time MiB"
is /usr/bin/time -v's maximum RSS, which is the larger of gdb's and the demo's (gdb reaps the
demo, and wait4 reports the peak of a process and its reaped children), so at 1M chunks it is
mostly the demo's half a gigabyte of heap.  Targets (issue 3) are judged on gdb's own peak.

heapsnap diff (issue 15) is timed between two stops: the demo runs as `many N CHANGES`, a
snapshot is saved to a file at the first stop, the demo changes CHANGES chunks and stops again,
and the diff runs there; its figure is less the same two-stop run without the diff, whose row
gives the snapshot file's bytes per chunk.

Targets: TARGETS gives a command at N seconds, a ratio to the floor and gdb's peak; RELATIVE a
command against another at the same N (the table no slower than the JSON).
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import LOADER, ROOT, precompile_gdbext

DEMO = os.path.join(ROOT, "demo_c", "build", "malloc_sizes")
GNU_TIME = "/usr/bin/time"

COMMANDS = [  # (name, gdb command, text that shows it worked)
    ("heapchunks --json", "heapchunks --json", '"command":"heapchunks"'),
    ("heapchunks", "heapchunks", "mallinfo2: arena="),
    ("bins --json", "bins --json", '"command":"bins"'),
    ("arenas", "arenas", "mp_ (malloc_par)"),
    ("chunk ADDR", "chunk (char *)mp_.sbrk_base + 0x1000", "state"),
    # issue 15: heapstat, and a snapshot saved then compared with the same stop (the model is
    # walked once for both; the file is the snapshot's JSON)
    ("heapstat", "heapstat", "malloc_trim(0) would return"),
]
# issue 15: heapsnap diff between two stops.  The demo runs as `many N CHANGES`: at its first
# stop a snapshot is saved to a file, then it frees CHANGES of its chunks, makes CHANGES new
# ones and stops again ("changed"), where the diff runs: the heap walk at that stop, the
# snapshot and the diff with its JSON.  Its base is the same run without the diff (the save and
# the second stop), so the figure is the diff command alone.
CHANGES = 10_000
SNAP_FILE = "snap.json"
TWO_STOPS = [  # (name, gdb commands at the stops, text that shows it worked)
    ("(two stops)", [f"heapsnap save a --file {SNAP_FILE} --json", "continue"], '"saved":"a"'),
    ("heapsnap diff", [f"heapsnap save a --file {SNAP_FILE} --json", "continue", "heapsnap diff a --json"],
     '"changed":['),
]
TARGETS = {  # (command, N) -> (seconds, ratio to the floor, gdb's peak MiB); None: no target
    ("heapchunks --json", 100_000): (0.5, 3.0, None),
    ("heapchunks --json", 1_000_000): (3.0, 3.0, 500),
    ("heapchunks --json", 10_000): (None, 3.0, None),
    ("bins --json", 100_000): (0.2, None, None),
    ("bins --json", 1_000_000): (0.5, None, None),  # issue 11
    # arenas reads arena headers, heap bounds and the free lists, not every chunk (issues 10, 11)
    ("arenas", 1_000_000): (0.5, 0.3, None),
    ("heapstat", 1_000_000): (2.0, None, None),  # issue 15
    ("heapsnap diff", 1_000_000): (3.0, None, None),
}
SNAPSHOT_BYTES_PER_CHUNK = 60  # issue 15: a snapshot file under 60 bytes per chunk
BASES = ("(no command)", "floor", "(two stops)")
# (command, than, N) -> the most `command` may take as a multiple of `than` (issue 11: the
# table is no slower than the JSON, which is the larger output)
RELATIVE = {
    ("heapchunks", "heapchunks --json", 100_000): 1.0,
    ("heapchunks", "heapchunks --json", 1_000_000): 1.0,
}

# Runs inside gdb: read each heap once, walk the size fields, count the chunks.
FLOOR = r'''
import gdb, time
def _floor(heaps):
    t0 = time.perf_counter()
    inf = gdb.selected_inferior()
    n = 0
    for start, end, first, top in heaps:
        words = memoryview(inf.read_memory(start, end - start)).cast("Q")
        pos, stop = (first - start) >> 3, (top - start) >> 3
        while pos < stop:
            size = words[pos + 1] & ~7
            if not size:
                break
            pos += size >> 3
            n += 1
        n += pos == stop  # the top chunk
    open(%(out)r, "w").write("%%d %%f\n" %% (n, time.perf_counter() - t0))
_floor(%(heaps)r)
'''


def parse_count(text: str) -> int:
    t = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else \
        f"{n // 1000}k" if n % 1000 == 0 else str(n)


def gdb_argv(n: int, command, hwm_file: str):
    """A batch run to the demo's stop, then `command` (one gdb command, or a list: then the
    demo makes its second stop, after CHANGES changes)."""
    more = f" {CHANGES}" if isinstance(command, list) else ""
    argv = ["gdb", "-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
            "-ex", "set width 0", "-ex", "set style enabled off",
            "-ex", "set disable-randomization on", "-ex", f"source {LOADER}",
            "-ex", "break gdbext_stop", "-ex", f"run many {n}{more} > /dev/null"]
    for c in (command if isinstance(command, list) else [command] if command else []):
        argv += ["-ex", c]
    argv += ["-ex", "python import re; open(%r, 'w').write(re.search(r'VmHWM:\\s*(\\d+)', "
             "open('/proc/self/status').read()).group(1))" % hwm_file, DEMO]
    return argv


class Runner:
    def __init__(self, tmp: str, use_time: bool):
        self.tmp = tmp
        self.use_time = use_time

    def run(self, n: int, command, expect=None):
        """(seconds, gdb's peak KiB, time -v's peak KiB or None, CPU seconds, stdout) of one
        batch run."""
        out = os.path.join(self.tmp, "out.txt")
        hwm = os.path.join(self.tmp, "hwm.txt")
        tv = os.path.join(self.tmp, "time.txt")
        argv = gdb_argv(n, command, hwm)
        if self.use_time:
            argv = [GNU_TIME, "-v", "-o", tv] + argv
        for f in (hwm, tv):
            if os.path.exists(f):
                os.unlink(f)
        with open(out, "w") as fo, open(os.path.join(self.tmp, "err.txt"), "w") as fe:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, cwd=self.tmp)
            took = time.perf_counter() - t
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        with open(out, errors="replace") as f:
            text = f.read()
        with open(os.path.join(self.tmp, "err.txt"), errors="replace") as f:
            err = f.read()
        if "Breakpoint 1, gdbext_stop" not in text or (expect and expect not in text):
            raise SystemExit(f"run failed: {' '.join(argv)}\nstdout ends:\n{text[-1500:]}\n"
                             f"stderr:\n{err[-1500:]}")
        with open(hwm) as f:
            gdb_peak = int(f.read())
        peak = None
        if self.use_time:
            with open(tv) as f:
                m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
            peak = int(m.group(1)) if m else None
        return took, gdb_peak, peak, cpu, text


COUNT = ("python from gdbext.inferior.heap import heap_view; from gdbext.inferior.process import "
         "Target; print('CHUNKS', sum(a.chunk_count for a in heap_view(Target()).state.arenas))")


def heap_ranges(runner: Runner, n: int):
    """[(start, end, first chunk, top)] per arena heap from arenas --json (which reads headers
    only), and the chunk count from the heap model."""
    text = runner.run(n, "arenas --json", '"command":"arenas"')[-1]
    doc = json.loads(text[text.index('{"command"'):].splitlines()[0])
    counted = runner.run(n, COUNT, "CHUNKS ")[-1]
    chunks = int(re.search(r"CHUNKS (\d+)", counted).group(1))
    heaps = []
    for a in doc["arenas"]:
        for h in a["heaps"]:
            start, end = h["start"], h["end"]
            if h["heap_info"] is None:  # the main heap: chunks from its (aligned) start
                first = start + (-(start + 16) & 15)
            else:  # after heap_info, and the arena itself in an arena's first heap
                after = start + 0x20 + (0x898 if a["address"] == start + 0x20 else 0)
                first = after + (-(after + 16) & 15)
            top = a["top"] if start <= a["top"] < end else end
            heaps.append((start, max(end, top + 16), first, top))
    return heaps, chunks


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10k,100k,1M", help="chunk counts N (default 10k,100k,1M)")
    p.add_argument("--runs", type=int, default=3, help="runs per configuration (default 3)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")
    p.add_argument("--only", help="time only these commands, comma-separated names as the table "
                   "has them (e.g. 'heapstat,heapsnap diff'); the bases and the floor always run")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    precompile_gdbext()
    sizes = [parse_count(s) for s in args.sizes.split(",") if s.strip()]
    if shutil.which("gdb") is None:
        raise SystemExit("gdb is not installed (apt-get install gdb)")
    use_time = os.access(GNU_TIME, os.X_OK)
    if not use_time:
        print(f"note: {GNU_TIME} is missing, so the time -v peak column is empty; install it "
              f"with `apt-get install time` (as root)", file=sys.stderr)
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "demo_c")], check=True,
                   stdout=subprocess.DEVNULL)

    rows = []
    with tempfile.TemporaryDirectory(prefix="gdbext-heap-walk-") as tmp:
        runner = Runner(tmp, use_time)
        for n in sizes:
            heaps, chunks = heap_ranges(runner, n)
            floor_py = os.path.join(tmp, "floor.py")
            floor_out = os.path.join(tmp, "floor.txt")
            with open(floor_py, "w") as f:
                f.write(FLOOR % {"out": floor_out, "heaps": heaps})
            configs = [("(no command)", None, None), ("floor", f"source {floor_py}", None)]
            wanted = None if not args.only else {w.strip() for w in args.only.split(",")}
            configs += [c for c in COMMANDS + TWO_STOPS
                        if wanted is None or c[0] in wanted or c[0] == "(two stops)"]
            got = {name: [] for name, _, _ in configs}
            inside = []  # the floor's own time, measured inside gdb
            snap = None  # (file bytes, chunks in the snapshot)
            for _ in range(args.runs):
                for name, command, expect in configs:
                    result = runner.run(n, command, expect)
                    got[name].append(result[:4])
                    if name == "(two stops)":
                        saved = json.loads(result[-1][result[-1].index('{"command"'):].splitlines()[0])
                        snap = (os.path.getsize(os.path.join(tmp, SNAP_FILE)), saved["chunks"])
                    if name == "floor":
                        with open(floor_out) as f:
                            walked, took = f.read().split()
                        walked = int(walked)
                        inside.append(float(took))
                        if walked != chunks:
                            raise SystemExit(f"floor walked {walked} chunks, the heap model "
                                             f"counts {chunks}")
            base = statistics.median(t for t, _, _, _ in got["(no command)"])
            base_cpu = statistics.median(c for _, _, _, c in got["(no command)"])
            floor = statistics.median(t for t, _, _, _ in got["floor"]) - base
            floor_cpu = statistics.median(c for _, _, _, c in got["floor"]) - base_cpu
            two = statistics.median(t for t, _, _, _ in got["(two stops)"])
            two_cpu = statistics.median(c for _, _, _, c in got["(two stops)"])
            for name, _, _ in configs:
                times = [t for t, _, _, _ in got[name]]
                med = statistics.median(times)
                cpu = statistics.median(c for _, _, _, c in got[name])
                if name in ("(no command)", "(two stops)"):  # a base: the whole run
                    net, net_cpu = med, cpu
                elif name in dict((t[0], 1) for t in TWO_STOPS):  # less the two-stop base
                    net, net_cpu = med - two, cpu - two_cpu
                else:
                    net, net_cpu = med - base, cpu - base_cpu
                peaks = [p for _, _, p, _ in got[name] if p is not None]
                rows.append({
                    "n": n, "chunks": chunks, "command": name, "seconds": round(net, 4),
                    "ratio_to_floor": None if name in BASES or floor <= 0
                    else round(net / floor, 2),
                    "cpu_seconds": round(net_cpu, 4),
                    "cpu_ratio_to_floor": None if name in BASES or floor_cpu <= 0
                    else round(net_cpu / floor_cpu, 2),
                    "gdb_peak_mib": round(max(g for _, g, _, _ in got[name]) / 1024, 1),
                    "time_peak_mib": round(max(peaks) / 1024, 1) if peaks else None,
                    "runs": [round(t, 4) for t in times]})
                if name == "floor":
                    rows[-1]["inside_gdb"] = round(statistics.median(inside), 4)
                if name == "(two stops)" and snap:
                    rows[-1]["snapshot_bytes_per_chunk"] = round(snap[0] / max(snap[1], 1), 1)
                if not args.json:
                    print_row(rows[-1], first=len(rows) == 1)
    if args.json:
        print(json.dumps({"runs": args.runs, "results": rows, "targets": verdicts(rows)}, indent=1))
    else:
        print()
        for line in verdicts(rows):
            print(f"{'met   ' if line['met'] else 'MISSED'} {line['what']}: {line['got']}")


def print_row(r, first=False):
    if first:
        print("seconds: median whole-run time minus the run without a command "
              "(that row: the whole run)")
        print(f"{'N':>5} {'chunks':>8}  {'command':<18} {'seconds':>8} {'x floor':>8} "
              f"{'cpu s':>7} {'x floor':>8} {'gdb MiB':>8} {'time MiB':>9}")
    ratio = "" if r["ratio_to_floor"] is None else f"{r['ratio_to_floor']:.2f}"
    cpu_ratio = "" if r["cpu_ratio_to_floor"] is None else f"{r['cpu_ratio_to_floor']:.2f}"
    tp = "-" if r["time_peak_mib"] is None else f"{r['time_peak_mib']:.0f}"
    note = f"  (read and walk inside gdb: {r['inside_gdb']:.3f})" if "inside_gdb" in r else ""
    if "snapshot_bytes_per_chunk" in r:
        note = f"  (the whole run; snapshot file: {r['snapshot_bytes_per_chunk']} bytes per chunk)"
    print(f"{label(r['n']):>5} {r['chunks']:>8}  {r['command']:<18} {r['seconds']:8.3f} "
          f"{ratio:>8} {r['cpu_seconds']:7.3f} {cpu_ratio:>8} {r['gdb_peak_mib']:8.0f} {tp:>9}{note}",
          flush=True)


def verdicts(rows):
    out = []
    for r in rows:
        t = TARGETS.get((r["command"], r["n"]))
        if not t:
            continue
        secs, ratio, mib = t
        what = f"{r['command']} at {label(r['n'])}"
        if secs is not None:
            out.append({"what": f"{what} under {secs} s", "got": f"{r['seconds']:.3f} s",
                        "met": r["seconds"] < secs})
        if ratio is not None and r["ratio_to_floor"] is not None:
            out.append({"what": f"{what} within {ratio:g}x the floor",
                        "got": f"{r['ratio_to_floor']:.2f}x", "met": r["ratio_to_floor"] <= ratio})
        if mib is not None:
            out.append({"what": f"{what}: gdb's peak under {mib} MiB",
                        "got": f"{r['gdb_peak_mib']:.0f} MiB", "met": r["gdb_peak_mib"] < mib})
    for r in rows:
        if "snapshot_bytes_per_chunk" in r:
            got = r["snapshot_bytes_per_chunk"]
            out.append({"what": f"heapsnap file at {label(r['n'])} under {SNAPSHOT_BYTES_PER_CHUNK} bytes per chunk",
                        "got": f"{got} bytes", "met": got < SNAPSHOT_BYTES_PER_CHUNK})
    seconds = {(r["command"], r["n"]): r["seconds"] for r in rows}
    for (command, than, n), most in RELATIVE.items():
        if (command, n) in seconds and seconds.get((than, n), 0) > 0:
            ratio = seconds[(command, n)] / seconds[(than, n)]
            out.append({"what": f"{command} at {label(n)} within {most:g}x {than}",
                        "got": f"{ratio:.2f}x", "met": ratio <= most})
    return out


if __name__ == "__main__":
    main()
