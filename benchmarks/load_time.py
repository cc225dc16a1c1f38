"""gdb start-up time with and without gdbext loaded: medians of repeated batch runs.

    .venv/bin/python benchmarks/load_time.py [RUNS]
"""

import statistics
import subprocess
import sys
import time

from common import LOADER, precompile_gdbext


def timed(argv, runs):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t)
    return out


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    precompile_gdbext()
    bare = timed(["gdb", "-nx", "-batch"], runs)
    loaded = timed(["gdb", "-nx", "-batch", "-ex", f"source {LOADER}"], runs)
    b, l = statistics.median(bare), statistics.median(loaded)
    print(f"runs: {runs}")
    print(f"gdb -nx -batch                 median {b * 1000:7.1f} ms")
    print(f"gdb -nx -batch + gdbext loader median {l * 1000:7.1f} ms")
    print(f"load overhead                  {(l - b) * 1000:7.1f} ms  (ratio {l / b:.2f})")


if __name__ == "__main__":
    main()
