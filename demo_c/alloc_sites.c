/*
 * alloc_sites - three call sites with known counts, for allocwatch.
 *
 * site_a allocates 500 objects (malloc 48 bytes), site_b 300 (calloc 80), site_c 200
 * (posix_memalign 24); 150 of site_a's are freed at release(); 60 of site_b's are leaked (their
 * only pointers overwritten).  Facts: site.a / site.b / site.c / site.free = "FUNCTION:LINE" of
 * each call (the line each site function records as it runs),
 * count.a.live=350, count.b.live=300, count.c.live=200, count.b.leaked=60.  Stop "sites".
 * The chunks in use before tracking: `before N` allocates N objects at site_before, then stops
 * "before" (allocwatch is turned on there), then goes on as above.
 * `double`: after "sites", site_a's last object (freed by release()) is freed again by double_free() (fact
 * site.double=double_free:LINE, printed just before, double.pointer=its address), which glibc aborts on.
 * `invalid`: frees a pointer into the middle of an object (fact invalid.pointer).
 * `uaf`: writes into a freed object of site_c (fact uaf.pointer, site.uaf=main:LINE) and stops "uaf".
 * `threads`: four threads (their own arenas and tcaches) each allocate 200 objects at site_t
 * and free 100 of them, then exit (libc frees each one's tcache itself); facts site.t and
 * count.t.live=400; stop "threads" after they are joined.
 * `exec`: allocates 10 objects at site_a, stops "before-exec", then executes itself without
 * arguments (the same process, a new program and heap), which goes on as above.
 * `bench N`: N malloc/free pairs, nothing else (benchmarks/allocwatch_overhead.py).
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NA 500
#define NB 300
#define NC 200
#define FREED_A 150
#define LEAKED_B 60

static void *a[NA], *b[NB], *c[NC];
static void *before[4096];
static int line_a, line_b, line_c, line_free, line_before;

__attribute__((noinline)) static void *site_a(void)
{
    line_a = __LINE__; return malloc(48);
}

__attribute__((noinline)) static void *site_b(int i)
{
    line_b = __LINE__; return calloc(1, 80 + (i & 0));
}

__attribute__((noinline)) static void *site_c(void)
{
    void *p = NULL;
    line_c = __LINE__; demo_check(posix_memalign(&p, 16, 24) == 0, "posix_memalign");
    return p;
}

__attribute__((noinline)) static void release(void *p)
{
    line_free = __LINE__; free(p);
}

__attribute__((noinline)) static void double_free(void *p)
{
    fact("site.double=double_free:%d", __LINE__); free(p);
}

__attribute__((noinline)) static void *site_before(void)
{
    line_before = __LINE__; return malloc(32);
}

static void *volatile sink;

#define NT 4
#define PER_T 200
static void *t_objs[NT][PER_T];
static int line_t;

__attribute__((noinline)) static void *site_t(void)
{
    line_t = __LINE__; return malloc(40);
}

static void *worker(void *arg)
{
    void **mine = arg;
    for (int i = 0; i < PER_T; i++)
        mine[i] = site_t();
    for (int i = 0; i < PER_T / 2; i++)
        release(mine[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    demo_fact_pid();
    if (!strcmp(mode, "bench")) {
        long n = demo_arg_long(argc > 2 ? argv[2] : NULL, 100000);
        for (long i = 0; i < n; i++) {
            sink = malloc(32);
            free(sink);
        }
        demo_done();
        return 0;
    }
    if (!strcmp(mode, "threads")) {
        pthread_t t[NT];
        for (int i = 0; i < NT; i++)
            demo_check(pthread_create(&t[i], NULL, worker, t_objs[i]) == 0, "pthread_create");
        for (int i = 0; i < NT; i++)
            pthread_join(t[i], NULL);
        fact("site.t=site_t:%d", line_t);
        fact("count.t.live=%d", NT * PER_T / 2);
        demo_stop("threads");
        demo_done();
        return 0;
    }
    if (!strcmp(mode, "exec")) {
        for (int i = 0; i < 10; i++)
            a[i] = site_a();
        demo_stop("before-exec");
        execl("/proc/self/exe", argv[0], (char *)NULL);
        demo_check(0, "execl");
    }
    if (!strcmp(mode, "before")) {
        long n = demo_arg_long(argc > 2 ? argv[2] : NULL, 100);
        if (n > 4096)
            n = 4096;
        for (long i = 0; i < n; i++)
            before[i] = site_before();
        fact("count.before=%ld", n);
        fact("site.before=site_before:%d", line_before);
        demo_stop("before");
    }
    for (int i = 0; i < NA; i++)
        a[i] = site_a();
    for (int i = 0; i < NB; i++)
        b[i] = site_b(i);
    for (int i = 0; i < NC; i++)
        c[i] = site_c();
    for (int i = 0; i < FREED_A; i++)
        release(a[NA - 1 - i]); /* the last ones, so that a[0] stays in use */
    for (int i = 0; i < LEAKED_B; i++)
        b[i] = (void *)(uintptr_t)0x1; /* leaked: no pointer left */
    fact("site.a=site_a:%d", line_a);
    fact("site.b=site_b:%d", line_b);
    fact("site.c=site_c:%d", line_c);
    fact("site.free=release:%d", line_free);
    fact("count.a.live=%d", NA - FREED_A);
    fact("count.b.live=%d", NB);
    fact("count.c.live=%d", NC);
    fact("count.b.leaked=%d", LEAKED_B);
    demo_stop("sites");
    if (!strcmp(mode, "double")) {
        void *p = a[NA - 1]; /* freed at release() already */
        fact("double.pointer=%#lx", (unsigned long)(uintptr_t)p);
        double_free(p);
        demo_stop("after-double");
    } else if (!strcmp(mode, "invalid")) {
        char *p = (char *)a[0] + 16;
        fact("invalid.pointer=%#lx", (unsigned long)(uintptr_t)p);
        double_free(p);
        demo_stop("after-invalid");
    } else if (!strcmp(mode, "uaf")) {
        long *p = c[0];
        release(p);
        fact("uaf.pointer=%#lx", (unsigned long)(uintptr_t)p);
        fact("site.uaf=main:%d", __LINE__ + 1);
        p[0] = 42;
        demo_stop("uaf");
    }
    demo_done();
    return 0;
}
