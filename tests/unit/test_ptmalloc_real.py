"""The model against real glibc processes: malloc_info and mallinfo2 must match exactly.

Each fixture holds the memory of the program below (its heap, the thread arena's heap, libc's
data with main_arena and mp_, and the anonymous mappings, big ones cut to 64 KiB), stopped at
its raise(SIGTRAP) under gdb, with /proc/PID/maps and what the program printed from
malloc_info(0, stdout) and mallinfo2().  For 2.36 (this machine's glibc, with libc6-dbg) gdb
gave the addresses of main_arena, mp_ and each thread's tcache; the 2.41 and 2.43 runs used
Debian's libc6 through its own ld.so, without symbols, and ptmalloc.locate found them. The
i386 one is the same program built with `gcc -m32` (SIZE_SZ 4, MALLOC_ALIGNMENT 16), its
anchors given by gdb with libc6-dbg:i386.
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
I386 = os.path.join(HERE, "test_ptmalloc_glibc236_i386.json.gz")

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


def test_i386_process_matches_glibc():
    """A 32-bit heap: 4-byte size fields and pointers, 16-byte alignment, so chunk headers
    sit 8 bytes before each 16-aligned user pointer and mmapped chunks 8 bytes into their
    mappings, one small bin fewer (SMALLBIN_CORRECTION), a 1 MiB HEAP_MAX_SIZE."""
    doc, st = run(Layout.for_version((2, 36), pointer_size=4), I386)
    assert st.problems == []
    assert st.malloc_info().to_xml() == doc["malloc_info"]
    assert list(st.mallinfo2()) == doc["mallinfo2"]
    main, thread = st.arenas
    assert thread.heaps[0].heap_info.ar_ptr == thread.address and thread.address % (1 << 20) == 0x18
    assert thread.heaps[0].start % (1 << 20) == 0  # heap_info at a HEAP_MAX_SIZE boundary
    assert main.heaps[0].addrs[0] + 8 == doc["tcache"]["1"]  # the tcache: each heap's first chunk
    assert thread.heaps[0].addrs[0] + 8 == doc["tcache"]["2"]
    assert st.tcache[1].chunk_count > 0 and st.tcache[2].chunk_count > 0
    assert len(st.mmapped) == 3
    assert all(m.address % 16 == 8 for m in st.mmapped)
    assert sorted(m.address - m.mapping_start for m in st.mmapped)[0] == 8
    for a in st.arenas:
        for h in a.heaps:
            assert all(c % 16 == 8 for c in h.addrs)


def test_i386_anchors_found_without_symbols():
    from gdbext.model.ptmalloc import find_main_arena, find_mp, libc_data_mappings
    doc, mem, maps = load(I386)
    L = Layout.for_version((2, 36), pointer_size=4)
    libc = libc_data_mappings(maps, next(m.path for m in maps if m.path.endswith("libc.so.6")))
    heap = next(m for m in maps if m.path == "[heap]")
    assert find_main_arena(mem, L, libc).address == doc["main_arena"]
    assert find_mp(mem, L, libc, heap.start).address == doc["mp"]
