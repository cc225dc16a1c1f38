/*
 * malloc_where - the oracle for mallocwhere: seeded random mallocs and
 * frees, and every so often a malloc made through probe(), on which the
 * test breaks, asks mallocwhere, then `finish`es to see what malloc gave.
 *
 *   malloc_where SEED PROBES [thread] [mxfast] [first]
 *
 * Sizes come from a few classes with a little jitter, so that tcache bins
 * fill and fastbins, small, large and unsorted bins, the last remainder,
 * top, the break and mmap are all reached. With "thread", the work runs in
 * a second thread (with mmap_threshold 16 MiB, so 8 MiB blocks come from the
 * heap), so a thread arena grows its heap and makes new ones. With "mxfast",
 * mallopt(M_MXFAST, 160) first, and bursts up to 155 bytes, so that chunks of
 * 0x90 and 0xa0 (past the default global_max_fast) fill fastbins.
 * With "first", a probe of 5000 bytes comes before any other malloc (with
 * "mxfast" too, after mallopt, which sets malloc up but makes no heap), and
 * probes of 1 << 62 and 1 << 63 bytes (both NULL) come last.
 * Each probe prints GDBEXT_FACT probe.N=ADDRESS after malloc returns.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 96

static unsigned long long state;
static long probes;
static int in_thread;
static int mxfast;

static unsigned rnd(void)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(state >> 33);
}

static size_t pick_size(void)
{
    static const size_t classes[] = {24, 40, 56, 100, 120, 200, 500, 1000, 1050,
                                     1500, 3000, 5000, 9000, 20000, 70000,
                                     140000, 300000, 8u << 20, 40u << 20};
    size_t n = sizeof classes / sizeof classes[0];
    unsigned r = rnd() % 100;
    if (r < 60) /* small: a few tcache bins, so they fill and fastbins get chunks */
        return classes[rnd() % 8] + rnd() % 8;
    if (r < 85)
        return classes[8 + rnd() % 6] + rnd() % 24;
    return classes[14 + rnd() % (n - 14)] + rnd() % 24; /* 40 MiB: always mmapped */
}

/* The test breaks here: mallocwhere SIZE, then finish. */
__attribute__((noinline)) void *probe(size_t size)
{
    void *p = malloc(size);
    __asm__ volatile("" ::: "memory");
    return p;
}

static void *work(void *arg)
{
    (void)arg;
    void *slot[SLOTS];
    memset(slot, 0, sizeof slot);
    for (long k = 0; k < probes; k++) {
        int ops = 1 + rnd() % 12;
        for (int i = 0; i < ops; i++) {
            int s = rnd() % SLOTS;
            if (slot[s]) {
                free(slot[s]);
                slot[s] = NULL;
            } else if (rnd() % 3) {
                slot[s] = malloc(pick_size());
            }
        }
        size_t size = pick_size();
        if (rnd() % 4 == 0) {
            /* a burst of one small size: 12 freed (the tcache holds 7, the rest go to a
             * fastbin before 2.43), then the tcache drained, so that a fastbin is next */
            size_t c = 16 + rnd() % (mxfast ? 140 : 96);
            void *burst[12];
            for (int i = 0; i < 12; i++)
                burst[i] = malloc(c);
            for (int i = 0; i < 12; i++)
                free(burst[i]);
            for (int i = 0; i < 7; i++) {
                int s = rnd() % SLOTS;
                free(slot[s]);
                slot[s] = malloc(c);
            }
            if (rnd() % 2)
                size = c;
        }
        if (in_thread && k % 5 == 4)
            size = (8u << 20) + rnd() % 4096; /* kept: the thread's heap fills, a new one follows */
        void *p = probe(size);
        fact("probe.%ld=%p", k, p);
        if (in_thread && k % 5 == 4)
            continue;
        int s = rnd() % SLOTS;
        free(slot[s]);
        slot[s] = p;
    }
    for (int s = 0; s < SLOTS; s++)
        free(slot[s]);
    return NULL;
}

int main(int argc, char **argv)
{
    demo_fact_pid();
    state = (unsigned long long)demo_arg_long(argc > 1 ? argv[1] : NULL, 1) * 2654435761ULL + 1;
    probes = demo_arg_long(argc > 2 ? argv[2] : NULL, 20);
    int first = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "mxfast") == 0 && mallopt(M_MXFAST, 160) == 1)
            mxfast = 1;
        first |= strcmp(argv[i], "first") == 0;
    }
    if (first) /* before any malloc (mallopt, with mxfast, sets malloc up but makes no heap) */
        fact("probe.first=%p", probe(5000));
    if (argc > 3 && strcmp(argv[3], "thread") == 0) {
        /* 8 MiB blocks from the thread's heaps, so that one fills and a new heap is made */
        mallopt(M_MMAP_THRESHOLD, 16 << 20);
        in_thread = 1;
        pthread_t t;
        demo_check(pthread_create(&t, NULL, work, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
    } else {
        work(NULL);
    }
    if (first) { /* requests no mapping can hold: NULL, ENOMEM */
        fact("probe.huge62=%p", probe((size_t)1 << 62));
        fact("probe.huge63=%p", probe((size_t)1 << 63));
    }
    demo_done();
    return 0;
}
