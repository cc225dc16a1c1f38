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
 *   lazy_tcache threads      the main thread frees three 0x20 chunks, then a
 *                            second thread does (its own arena and tcache,
 *                            made at its first free from 2.43) and stops;
 *                            facts main.entries and thread.entries: where
 *                            each thread's tcache entries[0] is, seen in
 *                            memory (the word that holds its last free)
 *   lazy_tcache threads N    the same, and the second thread overwrites N
 *                            entries of its tcache (bins 9..) with a bad
 *                            pointer: its shape no longer says "tcache"
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
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Three 0x20 chunks (the last one freed is returned), guarded, freed into tcache bin 0. */
static void *free_three(void)
{
    void *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = must_malloc(0x18);
    must_malloc(0x58);
    for (int i = 0; i < 3; i++)
        free(s[i]);
    return s[2];
}

/* The word in [lo, hi) that holds `head` (tcache bin 0's entry: entries[0]): before 2.43 the
 * tcache is its heap's first chunk, below head; from 2.43 glibc makes it at the thread's first
 * free, after the chunks freed.  Searched up first when `up` (the brk heap, whose start is not
 * known: the search down stops at the tcache), else down first (a thread's heap, whose start
 * is).  Seen, not computed, so that every glibc's layout fits. */
static uintptr_t find_head(void *head, uintptr_t lo, uintptr_t hi, int up)
{
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0) == (up != 0)) {
            for (uintptr_t *w = (uintptr_t *)head + 1; (uintptr_t)(w + 1) <= hi; w++)
                if (*w == (uintptr_t)head)
                    return (uintptr_t)w;
        } else {
            for (uintptr_t *w = (uintptr_t *)head - 2; (uintptr_t)w >= lo; w--)
                if (*w == (uintptr_t)head)
                    return (uintptr_t)w;
        }
    }
    demo_check(0, "tcache entries[0] not found");
    return 0;
}

static int bad_entries; /* threads N */

static void *second_thread(void *arg)
{
    (void)arg;
    void *head = free_three();
    /* a thread arena's heap starts at a multiple of HEAP_MAX_SIZE (64 MiB; 1 MiB on i386) with
     * its heap_info: ar_ptr, prev, size (the readable part) */
    size_t heap_max = sizeof(void *) == 8 ? (size_t)64 << 20 : (size_t)1 << 20;
    uintptr_t lo = (uintptr_t)head & ~(uintptr_t)(heap_max - 1);
    uintptr_t hi = lo + ((size_t *)lo)[2];
    uintptr_t entries = find_head(head, lo, hi, 0);
    fact("thread.entries=0x%lx", (unsigned long)entries);
    for (int i = 0; i < bad_entries; i++)
        ((uintptr_t *)entries)[9 + i] = 0x4141414141414140UL;
    fact("thread.tid=%d", (int)demo_gettid());
    demo_stop("heap");
    return NULL;
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
    } else if (strcmp(mode, "threads") == 0) {
        bad_entries = argc > 2 ? atoi(argv[2]) : 0;
        demo_check(bad_entries >= 0 && bad_entries <= 40, "threads N: N from 0 to 40");
        void *head = free_three();
                fact("main.entries=0x%lx",
             (unsigned long)find_head(head, (uintptr_t)head - 0x10000, (uintptr_t)sbrk(0), 1));
        pthread_t t;
        demo_check(pthread_create(&t, NULL, second_thread, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
        return 0;
    } else {
        demo_check(0, "mode: big_first, fake_first, large_bins or threads");
    }
    demo_stop("heap");
    return 0;
}
