"""The model against real glibc processes: malloc_info and mallinfo2 must match exactly.

Each fixture holds the memory of the program below (its heap, the thread arena's heap, libc's
data with main_arena and mp_, and the anonymous mappings, big ones cut to 64 KiB), stopped at
its raise(SIGTRAP) under gdb, with /proc/PID/maps and what the program printed from
malloc_info(0, stdout) and mallinfo2().  For 2.36 (this machine's glibc, with libc6-dbg) gdb
gave the addresses of main_arena, mp_ and each thread's tcache; the 2.41 and 2.43 runs used
Debian's libc6 through its own ld.so, without symbols, and ptmalloc.locate found them.
"""

import base64
import gzip
import json
import os

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import HeapInputs, Layout, analyze
from gdbext.model.regions import parse_proc_maps

import pytest

HERE = os.path.dirname(__file__)
FIXTURE = os.path.join(HERE, "test_ptmalloc_glibc236.json.gz")
OTHERS = {(2, 41): "test_ptmalloc_glibc241.json.gz", (2, 43): "test_ptmalloc_glibc243.json.gz"}

PROGRAM = r"""
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static pthread_barrier_t bar;
static void *worker(void *arg) {
  void *p[64];
  for (int i = 0; i < 64; i++) p[i] = malloc(16 + i * 24);
  for (int i = 0; i < 64; i += 3) free(p[i]);
  void *big = malloc(300000); (void)big;
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);
  return NULL;
}
int main(void) {
  pthread_barrier_init(&bar, NULL, 2);
  void *p[200];
  for (int i = 0; i < 200; i++) p[i] = malloc((i * 37) % 1500 + 1);
  for (int i = 0; i < 200; i += 2) free(p[i]);
  void *m1 = malloc(200000);
  void *m2 = memalign(65536, 300000);
  void *m3 = memalign(64, 100);
  (void)m1; (void)m2; (void)m3;
  void *q = malloc(5000); void *q2 = malloc(20); free(q); (void)q2;
  pthread_t t; pthread_create(&t, NULL, worker, NULL);
  pthread_barrier_wait(&bar);
  malloc_info(0, stdout);
  struct mallinfo2 mi = mallinfo2();
  printf("MALLINFO2 %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n", mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd, mi.usmblks, mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost);
  fflush(stdout);
  raise(SIGTRAP);
  pthread_barrier_wait(&bar);
  pthread_join(t, NULL);
  return 0;
}
"""


def load(path=FIXTURE):
    with gzip.open(path) as f:
        doc = json.load(f)
    mem = BytesMemory([(lo, base64.b64decode(d)) for lo, d in doc["segments"]])
    maps = parse_proc_maps(doc["maps"])
    return doc, mem, maps


def run(layout, path=FIXTURE):
    doc, mem, maps = load(path)
    candidates = [m for m in maps if m.anonymous and m.perms.startswith("rw") and not m.path]
    tcaches = {int(k): v for k, v in doc["tcache"].items() if v}
    st = analyze(HeapInputs(mem, layout, doc["main_arena"], mp=doc["mp"], tcaches=tcaches,
                            mmap_candidates=candidates))
    return doc, st


def test_matches_glibc_malloc_info_and_mallinfo2():
    doc, st = run(Layout.for_version((2, 36)))
    assert st.problems == []
    assert st.malloc_info().to_xml() == doc["malloc_info"]
    assert list(st.mallinfo2()) == doc["mallinfo2"]


def test_real_process_structure():
    doc, st = run(Layout.for_version((2, 36)))
    main, thread = st.arenas
    assert main.main and not thread.main and thread.heaps[0].heap_info.ar_ptr == thread.address
    assert len(st.mmapped) == 3 == st.mp["n_mmaps"]
    aligned = [m for m in st.mmapped if m.address != m.mapping_start]
    assert len(aligned) == 1 and aligned[0].user_address(st.layout) % 65536 == 0  # memalign
    assert st.tcache[1].chunk_count > 0 and st.tcache[2].chunk_count > 0
    # The tcache struct is the first chunk of each arena's heap.
    assert main.heaps[0].addrs[0] + 16 == doc["tcache"]["1"]
    assert thread.heaps[0].addrs[0] + 16 == doc["tcache"]["2"]
    # Every chunk is accounted for: the walk and the lists agree.
    for a in st.arenas:
        t = a.totals()
        walked_free = sum(t.get(k, {}).get("count", 0) for k in ("unsorted", "smallbin", "largebin"))
        assert walked_free == sum(len(b) for b in a.bin_lists())


def test_debug_type_layout_gives_the_same_answer():
    from test_ptmalloc_layout import DEBUG_236
    doc, st = run(Layout.from_types(DEBUG_236.get, (2, 36)))
    assert st.malloc_info().to_xml() == doc["malloc_info"]


@pytest.mark.parametrize("version", sorted(OTHERS))
def test_other_glibc_versions_found_without_symbols(version):
    from gdbext.model.ptmalloc import find_main_arena, find_mp, libc_data_mappings
    path = os.path.join(HERE, OTHERS[version])
    doc, st = run(Layout.for_version(version), path)
    assert st.problems == []
    assert st.malloc_info().to_xml() == doc["malloc_info"]
    assert list(st.mallinfo2()) == doc["mallinfo2"]
    assert len(st.mmapped) == 3 and len(st.arenas) == 2
    _, mem, maps = load(path)
    libc = libc_data_mappings(maps, next(m.path for m in maps if m.path.endswith("libc.so.6")))
    heap = next(m for m in maps if m.path == "[heap]")
    assert find_main_arena(mem, st.layout, libc).address == doc["main_arena"]
    assert find_mp(mem, st.layout, libc, heap.start).address == doc["mp"]
    if version >= (2, 43):
        assert "fast" not in doc["malloc_info"] and not st.layout.has_fastbins
