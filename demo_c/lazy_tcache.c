/*
 * lazy_tcache MODE - heaps whose first chunk is not the tcache.
 *
 * glibc 2.42 made the tcache lazily (at a thread's first free from 2.43)
 * and gave it large bins (glibc.malloc.tcache_max up to 4 MiB), which broke
 * the heap tools that took an arena's first chunk for the tcache:
 *
 *   lazy_tcache big_first    the first request is above the tcache range
 *                            (8000 bytes), before any small one
 *   lazy_tcache fake_first   the first chunk is as large as an older
 *                            glibc's tcache_perthread_struct (0x290) and
 *                            holds what looks like one: small counts, then
 *                            pointers into the heap
 *   lazy_tcache large_bins   frees of 2000, 8000 and 30000 bytes; run with
 *                            GLIBC_TUNABLES=glibc.malloc.tcache_max=65536
 *                            they go to large tcache bins from 2.42 on
 *
 * Each mode then mallocs three small chunks and frees them (they go to the
 * tcache, made by then), keeping guards between the chunks freed.
 *
 * Facts at "heap": first (the first chunk's user pointer) and
 * first.usable (malloc_usable_size), freed.N=ptr:usable and bin.N (tcache
 * or other), read off mallinfo2() around the free as malloc_sizes does: a
 * free into the tcache leaves fordblks as it was (or lowers it, when it
 * makes the tcache), any other raises it.  live.N for the guards.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int nfreed, nlive;

static void *must_malloc(size_t n)
{
    void *p = malloc(n);
    demo_check(p != NULL, "malloc");
    return p;
}

/* 0x58: a size no mode frees, so a guard never takes a freed chunk back from the tcache */
static void guard(void)
{
    void *p = must_malloc(0x58);
    fact("live.%d=0x%lx", nlive++, (unsigned long)p);
}

static void free_and_say(void *p)
{
    size_t usable = malloc_usable_size(p);
    unsigned long address = (unsigned long)p;
    size_t before = mallinfo2().fordblks;
    free(p);
    size_t after = mallinfo2().fordblks;
    fact("freed.%d=0x%lx:%zu", nfreed, address, usable);
    fact("bin.%d=%s", nfreed, after > before ? "other" : "tcache");
    nfreed++;
}

static void first_chunk(void *p)
{
    fact("first=0x%lx", (unsigned long)p);
    fact("first.usable=%zu", malloc_usable_size(p));
}

/* Three small chunks, guarded, freed: into the tcache. */
static void small_frees(void)
{
    void *s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = must_malloc(0x18 + 0x10 * i);
        guard();
    }
    for (int i = 0; i < 3; i++)
        free_and_say(s[i]);
}

int main(int argc, char **argv)
{
    demo_fact_pid();
    const char *mode = argc > 1 ? argv[1] : "big_first";
    if (strcmp(mode, "big_first") == 0) {
        first_chunk(must_malloc(8000));
        guard();
        small_frees();
    } else if (strcmp(mode, "fake_first") == 0) {
        unsigned char *p = must_malloc(0x280);
        first_chunk(p);
        memset(p, 0, 0x280);
        /* counts (one 2-byte count per bin, 64 bins), then entries pointing into the heap */
        for (int i = 0; i < 8; i++)
            ((uint16_t *)p)[i] = 1;
        for (int i = 0; i < 8; i++)
            ((uintptr_t *)(p + 128))[i] = (uintptr_t)(p + 0x100 + 0x20 * i);
        guard();
        small_frees();
    } else if (strcmp(mode, "large_bins") == 0) {
        first_chunk(must_malloc(0x18));
        guard();
        small_frees();
        static const size_t sizes[] = {2000, 8000, 30000};
        void *b[3];
        for (int i = 0; i < 3; i++) {
            b[i] = must_malloc(sizes[i]);
            guard();
        }
        for (int i = 0; i < 3; i++)
            free_and_say(b[i]);
    } else {
        demo_check(0, "mode: big_first, fake_first or large_bins");
    }
    demo_stop("heap");
    return 0;
}
