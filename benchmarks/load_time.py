"""gdb start-up time with and without gdbext loaded: medians of repeated batch runs.

    .venv/bin/python benchmarks/load_time.py [RUNS]
"""

import compileall
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = os.path.join(ROOT, "gdbext", "gdbinit.py")


def timed(argv, runs):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t)
    return out


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    # As install.sh does: gdb loads .pyc files, so no run pays for compiling gdbext (where
    # PYTHONDONTWRITEBYTECODE is set, gdb would otherwise compile it again in every run).
    compileall.compile_dir(os.path.join(ROOT, "gdbext"), quiet=1)
    bare = timed(["gdb", "-nx", "-batch"], runs)
    loaded = timed(["gdb", "-nx", "-batch", "-ex", f"source {LOADER}"], runs)
    b, l = statistics.median(bare), statistics.median(loaded)
    print(f"runs: {runs}")
    print(f"gdb -nx -batch                 median {b * 1000:7.1f} ms")
    print(f"gdb -nx -batch + gdbext loader median {l * 1000:7.1f} ms")
    print(f"load overhead                  {(l - b) * 1000:7.1f} ms  (ratio {l / b:.2f})")


if __name__ == "__main__":
    main()
