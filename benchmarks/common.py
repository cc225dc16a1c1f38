"""What every benchmark needs: where gdbext is, and gdbext byte-compiled before timing."""

import compileall
import os
import re
import resource
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = os.path.join(ROOT, "gdbext", "gdbinit.py")


def precompile_gdbext() -> None:
    """As install.sh does: gdb then loads .pyc files and no timed run pays for compiling
    gdbext (where PYTHONDONTWRITEBYTECODE is set, gdb would compile it again in every run).
    Run the benchmarks with gdb's Python (.venv/bin/python), so the .pyc files are its own."""
    compileall.compile_dir(os.path.join(ROOT, "gdbext"), quiet=1)


BUILD = os.path.join(ROOT, "demo_c", "build")
TIMER = ("python import time; gdb.set_convenience_variable('t0', str(time.perf_counter()))",
         "python print('ELAPSED', time.perf_counter() - float(gdb.convenience_variable('t0').string()))")


def native(argv) -> float:
    """The program's own run time without gdb, for reference."""
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def timed_gdb_run(argv, setup, status):
    """Run `argv` to its exit in one batch gdb with gdbext, after `setup` (a gdbext command or
    None), then `status`: (gdb's output, seconds from `run` to exit, CPU of gdb and the program).
    Start-up is outside the seconds and inside the CPU, where it cancels against the floor."""
    cmd = ["gdb", "-nx", "-q", "-batch", "-ex", "set confirm off", "-ex", "set pagination off",
           "-ex", f"source {LOADER}"]
    if setup:
        cmd += ["-ex", setup]
    cmd += ["-ex", TIMER[0], "-ex", "run", "-ex", TIMER[1], "-ex", status, "--args", *argv]
    before = children_cpu()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cpu = children_cpu() - before
    m = re.search(r"^ELAPSED (\S+)", p.stdout, re.M)
    if not m or "exited normally" not in p.stdout:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{p.stdout[-2000:]}")
    return p.stdout, float(m.group(1)), cpu


def children_cpu() -> float:
    """User and system CPU of the reaped children (gdb, and the program gdb reaped): what a
    run cost the machine, which the load of other work does not inflate as it does wall time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parts_in_gdbs(script: str, doc: str):
    """The command line (--chunks, --runs), then `script` (a benchmark file that times parts
    of a command inside gdb and writes {"times": {...}, ...} as JSON to the path in
    sys.argv[1]) sourced at the stop of `malloc_sizes many CHUNKS` in RUNS gdbs of their own,
    gdb's output to a file (as a user's goes to a terminal or a file, not a pipe a reader must
    keep up with): (the arguments, the documents, the medians of their times)."""
    import argparse
    import json
    import statistics
    import sys

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--chunks", type=int, default=1_000_000, help="chunks the demo makes (default 1M)")
    p.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    args = p.parse_args()
    chunks, runs = args.chunks, args.runs

    precompile_gdbext()
    name = os.path.splitext(os.path.basename(script))[0]
    tmp = os.environ.get("TMPDIR", "/tmp")
    out = os.path.join(tmp, "%s.%d.json" % (name, os.getpid()))
    text = os.path.join(tmp, "%s.%d.out" % (name, os.getpid()))
    cmd = ["gdb", "-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
           "-ex", "set width 0", "-ex", "set style enabled off",
           "-ex", "set disable-randomization on", "-ex", f"source {LOADER}", "-ex", "break gdbext_stop",
           "-ex", f"run many {chunks} > /dev/null",
           "-ex", f"python import sys; sys.argv = ['{name}', '{out}']",
           "-ex", f"source {os.path.abspath(script)}", os.path.join(BUILD, "malloc_sizes")]
    docs = []
    try:
        for _ in range(runs):
            with open(text, "w") as f:
                subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if not os.path.exists(out):
                with open(text, errors="replace") as f:
                    sys.exit(f"{name}: the gdb run failed:\n" + f.read()[-3000:])
            with open(out) as f:
                docs.append(json.load(f))
            os.unlink(out)
    finally:
        if os.path.exists(text):
            os.unlink(text)
    med = {k: statistics.median(d["times"][k] for d in docs) for k in docs[0]["times"]}
    return args, docs, med
