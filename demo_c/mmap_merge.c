/*
 * mmap_merge [MODE] - experiment: mmapped chunks in the middle of a mapping.
 *
 * malloc gets large chunks straight from mmap, and the kernel merges an
 * anonymous mapping with its neighbours of the same protection: CPython's
 * obmalloc arenas do it to every Python process.  This demo does it on
 * purpose.  It mallocs a 300000-byte chunk A and maps 64 pages of its own
 * directly below A's mapping (MAP_FIXED_NOREPLACE), then a 64 KiB-aligned
 * 200000-byte chunk B (memalign: a stale header at its mapping's start, the
 * chunk further in) and 16 pages of its own directly below B's mapping.
 * Each chunk then sits inside a mapping of /proc/self/maps, not at its
 * start (facts A.merged, B.merged = 1).  The program's pages are filled with
 * data that is not a chunk header.  Stop "merged".
 *
 * MODE small first mallocs 24 bytes and keeps them: a brk heap, which glibc
 * before 2.43 makes at the first malloc of any size (the tcache) and 2.43 only
 * for a small request or a free.
 *
 * Another MODE damages A's header after that stop (stop "corrupt"), then the demo
 * leaves with _exit(0) without calling malloc or free again:
 *   size    size field + 0x1230: not a whole number of pages
 *   flags   PREV_INUSE set in the size field
 *   prev    prev_size = 0x40
 *
 * Facts: X.chunk, X.user, X.map_start, X.map_len (X = A, B; the mapping is
 * the chunk's own mmap: its start from the header's prev_size, its length
 * what mallinfo2's hblkhd grew by), X.merged, X.vma_start, X.vma_end
 * (the /proc/self/maps line that holds the chunk), own.N.{addr,len} (N = 1,
 * 2), mallinfo2.{hblks,hblkhd}, corrupt.{field,value} (with MODE).
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char maps_text[1 << 16];

/* The /proc/self/maps line holding addr: its start and end. */
static void vma_of(uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    demo_check(fd >= 0, "open /proc/self/maps");
    size_t got = 0;
    ssize_t n;
    while (got < sizeof maps_text - 1 && (n = read(fd, maps_text + got, sizeof maps_text - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    maps_text[got] = 0;
    *start = *end = 0;
    for (char *line = maps_text; *line; ) {
        char *rest;
        uintptr_t lo = strtoul(line, &rest, 16);
        uintptr_t hi = strtoul(rest + 1, NULL, 16);
        if (lo <= addr && addr < hi) {
            *start = lo;
            *end = hi;
            return;
        }
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
}

/* The chunk header of user pointer p: [0] prev_size, [1] size field. */
static size_t *header(void *p)
{
    return (size_t *)p - 2;
}

/* Map `pages` pages of the program's own directly below `below`, filled with data. */
static char *own_below(uintptr_t below, size_t pages, size_t page, int n)
{
    size_t len = pages * page;
    char *want = (char *)(below - len);
    char *got = mmap(want, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    demo_check(got == want, "mmap directly below an mmapped chunk");
    for (size_t off = 0; off < len; off += page) {
        /* like a pool header: a small count, then a pointer into the page */
        ((size_t *)(got + off))[0] = off / page + 1;
        ((uintptr_t *)(got + off))[1] = (uintptr_t)got + off + 48;
        memset(got + off + 16, 0x5a, page - 16);
    }
    fact("own.%d.addr=0x%lx", n, (unsigned long)got);
    fact("own.%d.len=%zu", n, len);
    return got;
}

/* map_len is what glibc's own count of mmapped bytes grew by: its size field is the whole
 * mapping less prev_size before glibc 2.43, less the chunk header too from 2.43 on. */
static void report_chunk(const char *name, void *user, size_t map_len)
{
    size_t *h = header(user);
    uintptr_t chunk = (uintptr_t)h;
    uintptr_t map_start = chunk - h[0];
    uintptr_t vs, ve;
    vma_of(chunk, &vs, &ve);
    fact("%s.chunk=0x%lx", name, (unsigned long)chunk);
    fact("%s.user=0x%lx", name, (unsigned long)user);
    fact("%s.map_start=0x%lx", name, (unsigned long)map_start);
    fact("%s.map_len=%zu", name, map_len);
    fact("%s.vma_start=0x%lx", name, (unsigned long)vs);
    fact("%s.vma_end=0x%lx", name, (unsigned long)ve);
    fact("%s.merged=%d", name, vs < map_start);
}

int main(int argc, char **argv)
{
    demo_fact_pid();
    const char *mode = argc > 1 ? argv[1] : "";
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (strcmp(mode, "small") == 0) {
        void *small = malloc(24);
        demo_check(small != NULL, "malloc(24)");
        fact("small=0x%lx", (unsigned long)small);
    }

    size_t mapped = mallinfo2().hblkhd;
    void *a = malloc(300000);
    size_t a_len = mallinfo2().hblkhd - mapped;
    demo_check(a != NULL && (header(a)[1] & 2), "malloc(300000) is an mmapped chunk");
    own_below((uintptr_t)header(a) - header(a)[0], 64, page, 1);

    mapped = mallinfo2().hblkhd;
    void *b = memalign(65536, 200000);
    size_t b_len = mallinfo2().hblkhd - mapped;
    demo_check(b != NULL && (header(b)[1] & 2), "memalign(65536, 200000) is an mmapped chunk");
    own_below((uintptr_t)header(b) - header(b)[0], 16, page, 2);

    report_chunk("A", a, a_len);
    report_chunk("B", b, b_len);
    struct mallinfo2 mi = mallinfo2();
    fact("mallinfo2.hblks=%zu", mi.hblks);
    fact("mallinfo2.hblkhd=%zu", mi.hblkhd);
    demo_stop("merged");

    size_t *h = header(a);
    if (strcmp(mode, "size") == 0) {
        h[1] += 0x1230;
        fact("corrupt.field=0x%lx", (unsigned long)&h[1]);
        fact("corrupt.value=0x%zx", h[1]);
    } else if (strcmp(mode, "flags") == 0) {
        h[1] |= 1;
        fact("corrupt.field=0x%lx", (unsigned long)&h[1]);
        fact("corrupt.value=0x%zx", h[1]);
    } else if (strcmp(mode, "prev") == 0) {
        h[0] = 0x40;
        fact("corrupt.field=0x%lx", (unsigned long)&h[0]);
        fact("corrupt.value=0x%zx", h[0]);
    } else {
        demo_done();
        return 0;
    }
    demo_stop("corrupt");
    demo_done();
    _exit(0);
}
