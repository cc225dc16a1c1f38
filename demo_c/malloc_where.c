/*
 * malloc_where - the oracle for mallocwhere: seeded random mallocs and
 * frees, and every so often a malloc made through probe(), on which the
 * test breaks, asks mallocwhere, then `finish`es to see what malloc gave.
 *
 *   malloc_where SEED PROBES [thread]
 *
 * Sizes come from a few classes with a little jitter, so that tcache bins
 * fill and fastbins, small, large and unsorted bins, the last remainder,
 * top, the break and mmap are all reached. With "thread", the work runs in
 * a second thread, so a thread arena grows its heap and makes new ones.
 * Each probe prints GDBEXT_FACT probe.N=ADDRESS after malloc returns.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 96

static unsigned long long state;
static long probes;

static unsigned rnd(void)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(state >> 33);
}

static size_t pick_size(void)
{
    static const size_t classes[] = {24, 40, 56, 100, 120, 200, 500, 1000, 1050,
                                     1500, 3000, 5000, 9000, 20000, 70000,
                                     140000, 300000};
    size_t n = sizeof classes / sizeof classes[0];
    unsigned r = rnd() % 100;
    size_t c = r < 60 ? classes[rnd() % 8] : r < 95 ? classes[8 + rnd() % 6] : classes[14 + rnd() % (n - 14)];
    return c + rnd() % 24;
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
        void *p = probe(size);
        fact("probe.%ld=%p", k, p);
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
    if (argc > 3 && strcmp(argv[3], "thread") == 0) {
        pthread_t t;
        demo_check(pthread_create(&t, NULL, work, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
    } else {
        work(NULL);
    }
    demo_done();
    return 0;
}
