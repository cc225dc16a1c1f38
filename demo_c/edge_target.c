/*
 * edge_target - processes at the edge of what a debugger can read.
 *
 *   edge_target churn [THREADS=2]   threads that malloc and free without
 *                                   end; after the stop "churn" main makes
 *                                   FRESH marker blocks (fresh.K=addr:req,
 *                                   then fresh.done=1) and sleeps for ever,
 *                                   so the program keeps running, changing
 *                                   its heap, while gdb's prompt is back
 *                                   (`continue &`, non-stop mode)
 *   edge_target undumpable          a heap and two threads, then
 *                                   prctl(PR_SET_DUMPABLE, 0): the files
 *                                   of /proc/PID become root's, so a debugger running as
 *                                   another user (still attached) can read
 *                                   the memory but not /proc/PID/maps; stop
 *                                   "undumpable"
 *   edge_target undumpable stacks   the same, and each thread says what
 *                                   pthread_getattr_np gives for its stack
 *                                   (thread.N.stack=addr:size,
 *                                   thread.N.guard_size); that mallocs and
 *                                   frees, which from glibc 2.43 gives the
 *                                   thread a tcache, hence not by default
 */
#define _GNU_SOURCE
#include "demo.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define MAXTHREADS 8
#define SLOTS 64
#define FRESH 8
#define WARMUP 2000

static volatile long churned[MAXTHREADS];
static volatile int hold;               /* main asks the threads to park outside malloc */
static volatile int parked[MAXTHREADS]; /* ... and each says it has */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *churn(void *arg)
{
    long t = (long)arg;
    void *slot[SLOTS] = {0};
    unsigned seed = (unsigned)t * 7919u + 1u;

    for (;;) {
        int i = (int)(rand_r(&seed) % SLOTS);
        free(slot[i]);
        slot[i] = malloc(16 + rand_r(&seed) % 2000);
        if (slot[i])
            memset(slot[i], (int)t, 16);
        churned[t]++;
        while (hold) {  /* the stop "churn" sees a heap at rest; it changes again after */
            parked[t] = 1;
            sleep_ms(1);
        }
        parked[t] = 0;
    }
    return NULL;
}

static int mode_churn(int threads)
{
    pthread_t th[MAXTHREADS];

    demo_check(threads >= 1 && threads <= MAXTHREADS, "1 to 8 threads");
    for (long t = 0; t < threads; t++)
        demo_check(pthread_create(&th[t], NULL, churn, (void *)t) == 0, "pthread_create");
    for (int t = 0; t < threads; t++)
        while (churned[t] < WARMUP)
            sleep_ms(1);
    hold = 1;
    for (int t = 0; t < threads; t++)
        while (!parked[t])
            sleep_ms(1);
    fact("churn.threads=%d", threads);
    demo_stop("churn");
    hold = 0;
    for (int k = 0; k < FRESH; k++) {
        size_t req = 3000 + 16 * (size_t)k;  /* sizes the churning threads never ask for */
        void *p = malloc(req);
        demo_check(p != NULL, "malloc");
        memset(p, 0x5a, req);
        fact("fresh.%d=0x%lx:%zu", k, (unsigned long)p, req);
    }
    fact("fresh.done=1");
    for (;;)
        sleep_ms(10);
    return 0;
}

static pthread_barrier_t ready, release;

/* glibc's own totals, the oracle for the heap commands (no allocation). */
static void fact_mallinfo2(void)
{
    struct mallinfo2 m = mallinfo2();

    fact("mallinfo2.arena=%zu", m.arena);
    fact("mallinfo2.ordblks=%zu", m.ordblks);
    fact("mallinfo2.smblks=%zu", m.smblks);
    fact("mallinfo2.hblks=%zu", m.hblks);
    fact("mallinfo2.hblkhd=%zu", m.hblkhd);
    fact("mallinfo2.usmblks=%zu", m.usmblks);
    fact("mallinfo2.fsmblks=%zu", m.fsmblks);
    fact("mallinfo2.uordblks=%zu", m.uordblks);
    fact("mallinfo2.fordblks=%zu", m.fordblks);
    fact("mallinfo2.keepcost=%zu", m.keepcost);
}

static int report_stacks;

static void *holder(void *arg)
{
    long t = (long)arg;
    void *p = malloc(200 + 100 * (size_t)t);

    demo_check(p != NULL, "malloc");
    fact("thread.%ld.tid=%d", t, (int)demo_gettid());
    fact("thread.%ld.block=0x%lx", t, (unsigned long)p);
    if (report_stacks) { /* as glibc says: its mapping may hold the guard and other stacks */
        pthread_attr_t attr;
        void *addr;
        size_t size, guard;
        demo_check(pthread_getattr_np(pthread_self(), &attr) == 0, "pthread_getattr_np");
        demo_check(pthread_attr_getstack(&attr, &addr, &size) == 0, "getstack");
        demo_check(pthread_attr_getguardsize(&attr, &guard) == 0, "getguardsize");
        pthread_attr_destroy(&attr);
        fact("thread.%ld.stack=0x%lx:%zu", t, (unsigned long)addr, size);
        fact("thread.%ld.guard_size=%zu", t, guard);
    }
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release);
    free(p);
    return NULL;
}

static int mode_undumpable(void)
{
    pthread_t th[2];
    void *blocks[4];

    for (int k = 0; k < 4; k++) {
        size_t req = 100 + 1000 * (size_t)k;
        blocks[k] = malloc(req);
        demo_check(blocks[k] != NULL, "malloc");
        fact("malloc.%d=0x%lx:%zu", k, (unsigned long)blocks[k], req);
    }
    pthread_barrier_init(&ready, NULL, 3);
    pthread_barrier_init(&release, NULL, 3);
    for (long t = 1; t <= 2; t++)
        demo_check(pthread_create(&th[t - 1], NULL, holder, (void *)t) == 0, "pthread_create");
    pthread_barrier_wait(&ready);
    free(blocks[1]);  /* one free chunk in a bin, after the threads' own allocations */
    fact("free.1=0x%lx", (unsigned long)blocks[1]);
    void *big = malloc(256 * 1024);  /* above the mmap threshold: an mmapped chunk */
    demo_check(big != NULL, "malloc");
    fact("mmap.0=0x%lx:%d", (unsigned long)big, 256 * 1024);
    demo_check(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0, "prctl(PR_SET_DUMPABLE, 0)");
    fact("dumpable=%d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    fact_mallinfo2();
    demo_stop("undumpable");
    pthread_barrier_wait(&release);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    demo_done();
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "churn";

    demo_fact_pid();
    if (strcmp(mode, "churn") == 0)
        return mode_churn((int)demo_arg_long(argc > 2 ? argv[2] : NULL, 2));
    if (strcmp(mode, "undumpable") == 0) {
        report_stacks = argc > 2 && strcmp(argv[2], "stacks") == 0;
        return mode_undumpable();
    }
    demo_puts("usage: edge_target churn [THREADS] | undumpable [stacks]\n");
    return 2;
}
