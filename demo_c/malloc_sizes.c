/*
 * malloc_sizes - the oracle for the glibc heap model.
 *
 * Makes a known glibc 2.36 heap and reports every pointer it got, then
 * prints malloc_info() XML and mallinfo2() and stops at "heap".
 *
 *   malloc_sizes [basic]                 sizes, calloc/realloc/memalign, and
 *                                        frees crafted to fill tcache,
 *                                        fastbins, unsorted, small and large
 *                                        bins; two more threads with arenas
 *   malloc_sizes random SEED COUNT [T]   COUNT seeded random operations over
 *                                        T threads (default 3, incl. main)
 *   malloc_sizes threshold               the dynamic mmap threshold
 *   malloc_sizes entries                 one mmapped block from each malloc
 *                                        entry point, then each freed
 *   malloc_sizes many N [CHANGES]        N mixed allocations (benchmark); with
 *                                        CHANGES, a second stop ("changed")
 *                                        after freeing CHANGES of the live
 *                                        chunks and making CHANGES new ones
 *   malloc_sizes threads N [EXITED [ARENA_MAX]]
 *                                        N threads that keep their arenas,
 *                                        the first EXITED of them exited
 *                                        (then one late thread), at most
 *                                        ARENA_MAX arenas (mallopt)
 *   malloc_sizes big [MIB]               MIB MiB (default 300) of blocks in
 *                                        main_arena and one thread's arena
 *
 * The bin a free()d chunk went to (bin.tN.K) is not guessed: it is read
 * off the public mallinfo2() counters around each free() (fastbin chunks
 * raise smblks, unsorted chunks raise ordblks, a tcache free changes
 * nothing), and unsorted chunks are moved to small/large by size once a
 * later malloc has sorted the unsorted bin.
 *
 * Nothing here calls stdio except malloc_info(), and stdout is unbuffered
 * from the first line of main, so the heap holds only what we made.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define KiB 1024UL
#define MiB (1024UL * 1024UL)
#define MAXTHREADS 16
/* The first large-bin size: 64 small bins of MALLOC_ALIGNMENT (16) bytes, one fewer where
 * the alignment exceeds two size fields (i386: SIZE_SZ 4, glibc's SMALLBIN_CORRECTION). */
#define MIN_LARGE_SIZE ((64 - (16 > 2 * sizeof(size_t))) * 16)

/* The size field sits just before the user pointer; low bits are flags. */
static size_t chunk_size(const void *p)
{
    return ((const size_t *)p)[-1] & ~(size_t)7;
}

static int is_mmapped(const void *p)
{
    return (((const size_t *)p)[-1] & 2) != 0;
}

/* ---- which arena each thread allocates from ---------------------------- */

/* glibc's own rule (arena_for_chunk): a chunk without NON_MAIN_ARENA is
 * main_arena's; otherwise its heap_info sits at the start of the
 * HEAP_MAX_SIZE-aligned heap holding it, and its first field is ar_ptr.
 * HEAP_MAX_SIZE is 2 * DEFAULT_MMAP_THRESHOLD_MAX: 64 MiB on 64-bit, 1 MiB on 32-bit.
 * Only pointers are read: nothing is allocated. */
#define HEAP_MAX_SIZE (sizeof(long) == 8 ? 2UL * 4 * 1024 * 1024 * sizeof(long) : 1024UL * 1024)

static uintptr_t arena_seen[MAXTHREADS]; /* 0 unknown, 1 main, else ar_ptr */

static void note_arena(int t, const void *p)
{
    size_t field = ((const size_t *)p)[-1];
    if (arena_seen[t] != 0 || (field & 2)) /* known, or mmapped: no arena */
        return;
    arena_seen[t] = !(field & 4) ? 1 :
        *(const uintptr_t *)((uintptr_t)p & ~(HEAP_MAX_SIZE - 1));
}

/* arena.tN=main or =0x... (the malloc_state address); nothing if thread
 * t only got mmapped chunks. */
static void print_arena(int t)
{
    if (arena_seen[t] == 1)
        fact("arena.t%d=main", t);
    else if (arena_seen[t] != 0)
        fact("arena.t%d=0x%lx", t, (unsigned long)arena_seen[t]);
}

/* ---- the reported allocations (basic mode) ---------------------------- */

struct rec {
    void *p;
    size_t req;
    int t;          /* 0 = main thread, 1.. = helper threads */
    int freed;
    const char *bin; /* where free() put it, for freed ones */
    size_t csize;    /* chunk size, read before free */
};

static struct rec recs[1024];
static int nrec;
static struct rec remainder; /* the tail a shrinking realloc split off */

static int track(int t, void *p, size_t req)
{
    demo_check(p != NULL, "allocation failed");
    demo_check(nrec < (int)(sizeof recs / sizeof recs[0]), "too many recs");
    note_arena(t, p);
    recs[nrec] = (struct rec){ .p = p, .req = req, .t = t };
    return nrec++;
}

static int m(int t, size_t req)
{
    return track(t, malloc(req), req);
}

/* Which bin did the chunk just freed go to, judging by mallinfo2?
 * (For a realloc that also allocated from top, pass realloc = 1: free
 * bytes then change even when the old chunk went to the tcache.  A free
 * that makes the thread's tcache, from glibc 2.43, lowers them: the
 * tcache_perthread_struct came from top.) */
static const char *classify2(const struct mallinfo2 *a,
                             const struct mallinfo2 *b, int realloc)
{
    if (b->hblks + 1 == a->hblks)
        return "munmap";
    if (b->smblks == a->smblks + 1 && b->ordblks == a->ordblks)
        return "fastbin";
    if (b->ordblks == a->ordblks + 1 && b->smblks == a->smblks)
        return "unsorted";
    if (b->ordblks == a->ordblks && b->smblks == a->smblks &&
        b->fsmblks == a->fsmblks && (realloc || b->fordblks <= a->fordblks))
        return "tcache";
    return "other"; /* merged with a neighbour or top: not intended */
}

static const char *classify(const struct mallinfo2 *a,
                            const struct mallinfo2 *b)
{
    return classify2(a, b, 0);
}

static void free_rec(int i)
{
    struct mallinfo2 a = mallinfo2();
    recs[i].csize = chunk_size(recs[i].p);
    free(recs[i].p);
    struct mallinfo2 b = mallinfo2();
    recs[i].freed = 1;
    recs[i].bin = classify(&a, &b);
}

/* After a malloc has sorted the unsorted bin, say where things went. */
static void sorted(int t)
{
    for (int i = 0; i < nrec; i++)
        if (recs[i].t == t && recs[i].freed &&
            strcmp(recs[i].bin, "unsorted") == 0)
            recs[i].bin = recs[i].csize < MIN_LARGE_SIZE ? "smallbin" : "largebin";
}

static void print_recs(void)
{
    for (int i = 0; i < nrec; i++) {
        struct rec *r = &recs[i];
        if (r->freed) {
            fact("free.t%d.%d=0x%lx:%zu", r->t, i, (unsigned long)r->p,
                 r->req);
            fact("bin.t%d.%d=%s", r->t, i, r->bin);
        } else {
            fact("malloc.t%d.%d=0x%lx:%zu", r->t, i, (unsigned long)r->p,
                 r->req);
            if (is_mmapped(r->p))
                fact("mmap.t%d.%d=0x%lx:%zu", r->t, i, (unsigned long)r->p,
                     r->req);
        }
    }
}

/* ---- the report at the stop ------------------------------------------- */

static int same_mallinfo(const struct mallinfo2 *a, const struct mallinfo2 *b)
{
    return a->arena == b->arena && a->ordblks == b->ordblks &&
           a->smblks == b->smblks && a->hblks == b->hblks &&
           a->hblkhd == b->hblkhd && a->usmblks == b->usmblks &&
           a->fsmblks == b->fsmblks && a->uordblks == b->uordblks &&
           a->fordblks == b->fordblks && a->keepcost == b->keepcost;
}

/* sbrk0, malloc_info XML and mallinfo2 facts.  Allocates nothing: the
 * mallinfo2 snapshots before and after prove it (malloc_info.allocated). */
static void report(int with_xml)
{
    fact("sbrk0=0x%lx", (unsigned long)sbrk(0));
    struct mallinfo2 a = mallinfo2();
    if (with_xml) {
        demo_puts("GDBEXT_MALLOC_INFO_BEGIN\n");
        malloc_info(0, stdout);
        demo_puts("GDBEXT_MALLOC_INFO_END\n");
    }
    struct mallinfo2 b = mallinfo2();
    fact("malloc_info.allocated=%d", !same_mallinfo(&a, &b));
    fact("mallinfo2.arena=%zu", b.arena);
    fact("mallinfo2.ordblks=%zu", b.ordblks);
    fact("mallinfo2.smblks=%zu", b.smblks);
    fact("mallinfo2.hblks=%zu", b.hblks);
    fact("mallinfo2.hblkhd=%zu", b.hblkhd);
    fact("mallinfo2.usmblks=%zu", b.usmblks);
    fact("mallinfo2.fsmblks=%zu", b.fsmblks);
    fact("mallinfo2.uordblks=%zu", b.uordblks);
    fact("mallinfo2.fordblks=%zu", b.fordblks);
    fact("mallinfo2.keepcost=%zu", b.keepcost);
}

/* ---- helper threads: run one at a time, then wait to be released ------ */

struct worker {
    pthread_t th;
    int t;
    void (*work)(int t, void *arg);
    void *arg;
    sem_t done;
};

static sem_t release_sem;

static void *worker_main(void *p)
{
    struct worker *w = p;
    fact("thread.t%d.tid=%d", w->t, (int)demo_gettid());
    w->work(w->t, w->arg);
    print_arena(w->t);
    sem_post(&w->done);
    while (sem_wait(&release_sem) != 0)
        ;
    return NULL;
}

/* Start helper t and wait until its work is done (it then stays blocked). */
static void start_worker(struct worker *w, int t,
                         void (*work)(int, void *), void *arg)
{
    w->t = t;
    w->work = work;
    w->arg = arg;
    sem_init(&w->done, 0, 0);
    demo_check(pthread_create(&w->th, NULL, worker_main, w) == 0,
               "pthread_create");
    while (sem_wait(&w->done) != 0)
        ;
}

static void release_and_join(struct worker *w, int n)
{
    for (int i = 0; i < n; i++)
        sem_post(&release_sem);
    for (int i = 0; i < n; i++)
        pthread_join(w[i].th, NULL);
}

/* ---- basic mode -------------------------------------------------------- */

#define GUARD 24 /* live separator so freed chunks never coalesce */

/* Chunks of the given sizes, each followed by a live guard.  Returns the
 * first rec; chunk i is rec first + 2*i, its guard first + 2*i + 1. */
static int guarded_list(int t, const size_t *req, int n)
{
    int first = nrec;
    for (int i = 0; i < n; i++) {
        m(t, req[i]);
        m(t, GUARD);
    }
    return first;
}

static int guarded(int t, int n, size_t req)
{
    int first = nrec;
    for (int i = 0; i < n; i++)
        guarded_list(t, &req, 1);
    return first;
}

static void free_guarded(int first, int n)
{
    for (int i = 0; i < n; i++)
        free_rec(first + 2 * i);
}

static void basic_thread1(int t, void *arg)
{
    (void)arg;
    int tc = guarded(t, 4, 56);   /* -> tcache 0x40 */
    int fb = guarded(t, 9, 24);   /* -> 7 tcache 0x20 + 2 fastbin */
    int us = guarded(t, 1, 0x600);/* -> unsorted */
    m(t, 100);
    m(t, 1000);
    m(t, 5000);
    free_guarded(tc, 4);
    free_guarded(fb, 9);
    free_guarded(us, 1);
}

static void basic_thread2(int t, void *arg)
{
    (void)arg;
    int tc = guarded(t, 2, 128);  /* -> tcache 0x90 */
    int lg = guarded(t, 1, 0x800);/* -> unsorted, then large bin */
    m(t, 40);
    m(t, 300);
    m(t, 300 * KiB);              /* mmapped */
    free_guarded(tc, 2);
    free_guarded(lg, 1);
    m(t, 0x2000);                 /* sorts the unsorted bin */
    sorted(t);
}

static void mode_basic(void)
{
    struct worker w[2];

    /* Helper threads first: pthread_create callocs in the main arena. */
    start_worker(&w[0], 1, basic_thread1, NULL);
    start_worker(&w[1], 2, basic_thread2, NULL);
    /* glibc 2.43 makes a thread's tcache at its first free, from the best free chunk: make it
     * now, from top, not later out of a chunk this mode reports as free (before 2.43 the tcache
     * exists already, and the next malloc of this size takes the chunk back). */
    free(malloc(16));

    /* A. Chunks we will free (or realloc), from a clean top, each with a
     *    live guard after it, so nothing coalesces and nothing touches top.
     *    The tcache/fastbin split below is the plan; memalign's slack (B)
     *    may take a tcache slot first, and bin.* reports what happened. */
    static const size_t large[] = { 0x1000, 0x1100, 0x1000 };
    static const size_t unsorted[] = { 0x500, 0x600 };
    int tc30 = guarded(0, 3, 40);     /* tcache 0x30: 3 entries */
    int fb20 = guarded(0, 9, 24);     /* 0x20: 7 tcache, 2 fastbin */
    int fb50 = guarded(0, 10, 72);    /* 0x50: 7 tcache, 3 fastbin */
    int sm300 = guarded(0, 8, 0x2f8); /* 0x300: 7 tcache, 1 small bin */
    int lg = guarded_list(0, large, 3);   /* 0x1010, 0x1110, 0x1010 */
    int us = guarded_list(0, unsorted, 2);/* 0x510, 0x610 */
    int a = guarded(0, 1, 100);       /* realloc'ed bigger */
    int b = guarded(0, 1, 2000);      /* realloc'ed smaller */

    /* B. Live allocations of many kinds. */
    static const size_t spread[] = { 24,   40,   100,   200,    1000,
                                     1500, 5000, 20000, 200000, 1 * MiB };
    for (size_t i = 0; i < sizeof spread / sizeof spread[0]; i++)
        m(0, spread[i]);
    track(0, calloc(10, 30), 300);
    track(0, calloc(1, 150000), 150000); /* mmapped */

    /* realloc grow: the guard forces a move; the old chunk is freed. */
    {
        struct mallinfo2 before = mallinfo2();
        size_t csize = chunk_size(recs[a].p);
        void *np = realloc(recs[a].p, 3000);
        struct mallinfo2 after = mallinfo2();
        demo_check(np != NULL, "realloc");
        if (np != recs[a].p) {
            recs[a].freed = 1;
            recs[a].csize = csize;
            recs[a].bin = classify2(&before, &after, 1);
            track(0, np, 3000);
        } else {
            recs[a].req = 3000;
        }
    }
    /* aligned allocations (glibc frees their alignment slack itself, so
     * a few free chunks exist that no free.* fact describes) */
    void *pa;
    track(0, memalign(64, 100), 100);
    demo_check(posix_memalign(&pa, 4096, 1000) == 0, "posix_memalign");
    track(0, pa, 1000);
    track(0, aligned_alloc(4096, 4096), 4096);
    track(0, aligned_alloc(64, 256), 256);
    /* mmapped, and aligned by dropping the head of the mapping: the chunk
     * starts inside its mapping, prev_size = its offset */
    track(0, memalign(64 * KiB, 200 * KiB), 200 * KiB);

    /* realloc shrink: stays in place; the tail is split off and freed
     * (to the unsorted bin, its next chunk being the live guard). */
    {
        struct mallinfo2 before = mallinfo2();
        void *np = realloc(recs[b].p, 500);
        struct mallinfo2 after = mallinfo2();
        demo_check(np == recs[b].p, "realloc shrink in place");
        recs[b].req = 500;
        unsigned long tail = (unsigned long)np - 2 * sizeof(size_t) + chunk_size(np);
        size_t tsize = ((size_t *)tail)[1] & ~(size_t)7;
        const char *bin = classify(&before, &after);
        if (strcmp(bin, "unsorted") == 0) /* sorted in step D */
            bin = tsize < MIN_LARGE_SIZE ? "smallbin" : "largebin";
        remainder = (struct rec){ .p = (void *)tail, .csize = tsize,
                                  .bin = bin };
    }

    /* C. Fill tcache 0x300, then one more goes to unsorted; large ones
     *    go straight to unsorted. */
    free_guarded(sm300, 8);
    free_guarded(lg, 3);
    /* D. A request no bin can serve sorts them into small/large bins. */
    m(0, 0x2000);
    sorted(0);
    /* E. These stay in the unsorted bin: no main-arena malloc follows. */
    free_guarded(us, 2);
    /* F. tcache and fastbins last (a large malloc would consolidate). */
    free_guarded(tc30, 3);
    free_guarded(fb20, 9);
    free_guarded(fb50, 10);

    print_recs();
    print_arena(0);
    fact("realloc_remainder.t0=0x%lx", (unsigned long)remainder.p);
    fact("realloc_remainder.t0.size=%zu", remainder.csize);
    fact("realloc_remainder.t0.bin=%s", remainder.bin);
    report(1);
    demo_stop("heap");

    release_and_join(w, 2);
    report(1); /* the exited threads' tcache chunks are back in their arenas */
    demo_stop("after_join");
}

/* ---- random mode ------------------------------------------------------- */

struct live {
    void *p;
    size_t size;
};

struct rnd_job {
    uint64_t state;
    long count;
    struct live *live; /* mmapped, so tracking does not touch the heap */
    long nlive, cap;
};

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t rnd_size(uint64_t *s)
{
    if (xorshift(s) % 100 < 3)
        return 100 * KiB + xorshift(s) % (500 * KiB + 1);
    return 1 + xorshift(s) % 2048;
}

static void random_work(int t, void *arg)
{
    struct rnd_job *j = arg;
    uint64_t *s = &j->state;

    for (long n = 0; n < j->count; n++) {
        unsigned op = j->nlive == 0 ? 0 : (unsigned)(xorshift(s) % 100);
        if (j->nlive == j->cap)
            op = 60; /* full: free */
        if (op < 40 || op >= 90) {
            size_t sz = rnd_size(s);
            void *p = malloc(sz);
            demo_check(p != NULL, "malloc");
            note_arena(t, p);
            j->live[j->nlive++] = (struct live){ p, sz };
        } else if (op < 50) {
            size_t nm = 1 + xorshift(s) % 16, sz = rnd_size(s) / nm + 1;
            void *p = calloc(nm, sz);
            demo_check(p != NULL, "calloc");
            note_arena(t, p);
            j->live[j->nlive++] = (struct live){ p, nm * sz };
        } else if (op < 80) {
            long k = (long)(xorshift(s) % (uint64_t)j->nlive);
            free(j->live[k].p);
            j->live[k] = j->live[--j->nlive];
        } else {
            long k = (long)(xorshift(s) % (uint64_t)j->nlive);
            size_t sz = rnd_size(s);
            void *p = realloc(j->live[k].p, sz);
            demo_check(p != NULL, "realloc");
            note_arena(t, p);
            j->live[k] = (struct live){ p, sz };
        }
    }
}

static void *map_array(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    demo_check(p != MAP_FAILED, "mmap tracking array");
    return p;
}

static void mode_random(uint64_t seed, long count, int threads)
{
    struct rnd_job jobs[MAXTHREADS];
    struct worker w[MAXTHREADS];

    demo_check(threads >= 1 && threads <= MAXTHREADS, "thread count");
    demo_check(count >= 0, "count");
    fact("random.seed=%lu", (unsigned long)seed);
    fact("random.count=%ld", count);
    fact("random.threads=%d", threads);

    for (int t = 0; t < threads; t++) {
        struct rnd_job *j = &jobs[t];
        /* thread t's stream depends only on (seed, t) */
        j->state = (seed + 1) * 0x9e3779b97f4a7c15ULL + (uint64_t)t * 7919;
        if (j->state == 0)
            j->state = 1;
        j->count = count / threads + (t == 0 ? count % threads : 0);
        j->cap = 4096;
        j->live = map_array((size_t)j->cap * sizeof(struct live));
        j->nlive = 0;
    }
    /* Helpers one after another (deterministic), main thread last. */
    for (int t = 1; t < threads; t++)
        start_worker(&w[t - 1], t, random_work, &jobs[t]);
    random_work(0, &jobs[0]);
    print_arena(0);

    for (int t = 0; t < threads; t++) {
        fact("count.t%d=%ld", t, jobs[t].nlive);
        for (long k = 0; k < jobs[t].nlive; k++) {
            struct live *l = &jobs[t].live[k];
            fact("live.t%d.%ld=0x%lx:%zu", t, k, (unsigned long)l->p,
                 l->size);
            if (is_mmapped(l->p))
                fact("mmap.t%d.%ld=0x%lx:%zu", t, k, (unsigned long)l->p,
                     l->size);
        }
    }
    report(1);
    demo_stop("heap");
    release_and_join(w, threads - 1);
}

/* ---- threshold mode ---------------------------------------------------- */

static unsigned long last_brk;

static int nbrk;

static void note_brk(void)
{
    unsigned long b = (unsigned long)sbrk(0);
    if (b != last_brk)
        fact("brk.%d=0x%lx", nbrk++, b);
    last_brk = b;
}

static void threshold_fact(const char *name, void *p, size_t req)
{
    demo_check(p != NULL, "malloc");
    fact("threshold.%s=0x%lx:%zu", name, (unsigned long)p, req);
    fact("threshold.%s.mmapped=%d", name, is_mmapped(p));
    fact("threshold.%s.chunk_size=%zu", name, chunk_size(p));
}

static void mode_threshold(void)
{
    note_brk();
    void *p = malloc(200 * KiB);
    threshold_fact("first", p, 200 * KiB);
    note_brk();
    demo_stop("first");

    /* Freeing an mmapped chunk raises mmap_threshold to its size. */
    fact("threshold.new_threshold=%zu", chunk_size(p));
    free(p);
    note_brk();
    demo_stop("freed");

    void *q = malloc(300 * KiB); /* above the new threshold: mmap */
    threshold_fact("second", q, 300 * KiB);
    note_brk();
    demo_stop("second");

    void *r = malloc(150 * KiB); /* below it now: from the heap */
    threshold_fact("third", r, 150 * KiB);
    note_brk();
    demo_stop("third");

    report(1);
    demo_stop("heap");
}

/* ---- entries mode ------------------------------------------------------ */

/* One block above a fixed mmap threshold from each allocator entry point, so
 * each maps memory once (brkwatch --mmap names the entry point that did):
 * entry.NAME=ADDRESS:REQUEST, then all freed (stop "mapped", then "freed"). */
static void mode_entries(void)
{
    enum { N = 8 };
    void *p[N];
    const char *name[N] = {"malloc", "calloc", "realloc", "memalign",
                           "aligned_alloc", "posix_memalign", "valloc",
                           "pvalloc"};
    size_t req[N];
    long page = sysconf(_SC_PAGESIZE);

    demo_check(mallopt(M_MMAP_THRESHOLD, 64 * KiB) == 1, "mallopt");
    for (int i = 0; i < N; i++)
        req[i] = (size_t)(200 + 40 * i) * KiB; /* page multiples, all distinct */
    void *small = malloc(64);
    demo_check(small != NULL, "malloc");
    p[0] = malloc(req[0]);
    p[1] = calloc(1, req[1]);
    p[2] = realloc(small, req[2]); /* a heap chunk moved to an mmapped one */
    p[3] = memalign((size_t)page, req[3]);
    p[4] = aligned_alloc((size_t)page, req[4]);
    demo_check(posix_memalign(&p[5], (size_t)page, req[5]) == 0, "posix_memalign");
    p[6] = valloc(req[6]);
    p[7] = pvalloc(req[7]);
    for (int i = 0; i < N; i++) {
        demo_check(p[i] != NULL && is_mmapped(p[i]), name[i]);
        fact("entry.%s=0x%lx:%zu", name[i], (unsigned long)p[i], req[i]);
    }
    demo_stop("mapped");
    for (int i = 0; i < N; i++)
        free(p[i]);
    demo_stop("freed");
}

/* ---- many mode --------------------------------------------------------- */

/* The second stop of `many N CHANGES`: between two stops of a big heap, free `changes` live
 * chunks spread over it (tcache, fastbins and bins refill, some merge) and make as many new ones
 * (from the bins and from top), so a diff has added, removed and changed chunks and top moves. */
static void many_changes(void **ptr, long n, long changes, uint64_t *s)
{
    long step = changes > 0 && n / changes > 3 ? n / changes : 3;
    long freed = 0;

    for (long i = 1; i < n && freed < changes; i += step) {
        if (i % 3 == 0 && ++i >= n) /* freed before the first stop */
            break;
        free(ptr[i]);
        ptr[i] = NULL;
        freed++;
    }
    for (long k = 0; k < changes; k++)
        demo_check(malloc(16 + xorshift(s) % 1009) != NULL, "malloc");
}

static void mode_many(long n, long changes)
{
    demo_check(n > 0, "count");
    void **ptr = map_array((size_t)n * sizeof(void *));
    uint64_t s = 0x2545f4914f6cdd1dULL;
    long nfree = 0;

    for (long i = 0; i < n; i++) {
        ptr[i] = malloc(16 + xorshift(&s) % 1009);
        demo_check(ptr[i] != NULL, "malloc");
    }
    /* Free every third one: first half, sort the unsorted bin with a size
     * no bin has, then the second half so tcache/fastbins/unsorted refill. */
    for (long i = 0; i < n / 2; i += 3, nfree++)
        free(ptr[i]);
    void *sorter = malloc(0x3000);
    demo_check(sorter != NULL, "malloc");
    for (long i = (n / 2 + 2) / 3 * 3; i < n; i += 3, nfree++)
        free(ptr[i]);

    fact("count.malloc=%ld", n + 1);
    fact("count.free=%ld", nfree);
    fact("count.live=%ld", n + 1 - nfree);
    report(n <= 100000);
    demo_stop("heap");
    if (changes > 0) {
        many_changes(ptr, n, changes, &s);
        demo_stop("changed");
    }
}

/* ---- threads mode: many threads, exited threads, the arena limit ------- */

#define MAXMANY 1024

struct many {
    pthread_t th;
    int t;
    sem_t done, release;
};

static struct many many[MAXMANY + 1];

/* A little of everything in the thread's arena: a size class of its own
 * freed nine times (tcache, then fastbin for the small classes), a chunk
 * for the unsorted bin behind a live guard, and two live blocks. */
static void many_work(int t)
{
    size_t size = 16 + (size_t)(t % 13) * 16;
    void *same[9];
    for (int i = 0; i < 9; i++) {
        same[i] = malloc(size);
        demo_check(same[i] != NULL, "malloc");
    }
    demo_check(malloc(1000 + (size_t)t) != NULL, "malloc");
    void *u = malloc(0x500);
    demo_check(u != NULL && malloc(5000) != NULL, "malloc");
    for (int i = 0; i < 9; i++)
        free(same[i]);
    free(u);
}

static void *many_main(void *p)
{
    struct many *w = p;
    fact("thread.t%d.tid=%d", w->t, (int)demo_gettid());
    many_work(w->t);
    sem_post(&w->done);
    while (sem_wait(&w->release) != 0)
        ;
    return NULL;
}

static void many_start(int t, size_t stack)
{
    struct many *w = &many[t];
    pthread_attr_t attr;
    w->t = t;
    sem_init(&w->done, 0, 0);
    sem_init(&w->release, 0, 0);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack);
    demo_check(pthread_create(&w->th, &attr, many_main, w) == 0, "pthread_create");
    pthread_attr_destroy(&attr);
    while (sem_wait(&w->done) != 0)
        ;
}

static void many_finish(int t)
{
    sem_post(&many[t].release);
    pthread_join(many[t].th, NULL);
}

/* N threads, started one after another (each keeps its arena while it
 * lives, so arenas are created until the limit: ARENA_MAX when given,
 * else 8 per CPU); then the first EXITED of them exit and are joined,
 * and, when some did, one late thread starts (it takes an arena the
 * exited ones left on the free list).  Facts: thread.tN.tid of every
 * thread, exited.tN=1 of those that exited, the CPU counts glibc may use
 * for its limit. */
static void mode_threads(int n, int exited, int arena_max)
{
    cpu_set_t cpus;
    demo_check(n >= 0 && n < MAXMANY && exited >= 0 && exited <= n, "thread counts");
    if (arena_max > 0)
        demo_check(mallopt(M_ARENA_MAX, arena_max) == 1, "mallopt(M_ARENA_MAX)");
    demo_check(sched_getaffinity(0, sizeof cpus, &cpus) == 0, "sched_getaffinity");
    fact("ncpu.sched=%d", CPU_COUNT(&cpus));
    fact("ncpu.online=%d", get_nprocs());
    fact("arena_max=%d", arena_max);
    many_work(0);
    for (int t = 1; t <= n; t++)
        many_start(t, 256 * KiB);
    for (int t = 1; t <= exited; t++) {
        fact("exited.t%d=1", t);
        many_finish(t);
    }
    int last = n;
    if (exited > 0)
        many_start(++last, 256 * KiB);
    fact("threads.alive=%d", last - exited);
    many_work(0);
    report(1);
    demo_stop("heap");
    for (int t = exited + 1; t <= last; t++)
        many_finish(t);
    demo_stop("joined");
}

/* ---- big mode: a heap of several hundred MiB --------------------------- */

struct big_job {
    size_t bytes;
    long count;
    void **ptr;
};

/* Blocks of 8 to 120 KiB (below the mmap threshold) with a small one every
 * eighth, until `bytes` are allocated; then every fourth block is freed. */
static void big_work(int t, void *arg)
{
    (void)t;
    struct big_job *j = arg;
    uint64_t s = 0x9e3779b97f4a7c15ULL ^ j->bytes;
    size_t got = 0;
    long cap = (long)(j->bytes / (8 * KiB)) + 16;
    j->ptr = map_array((size_t)cap * sizeof(void *));
    for (j->count = 0; got < j->bytes && j->count < cap; j->count++) {
        size_t sz = j->count % 8 == 7 ? 24 + xorshift(&s) % 200
                                      : 8 * KiB + xorshift(&s) % (112 * KiB);
        j->ptr[j->count] = malloc(sz);
        demo_check(j->ptr[j->count] != NULL, "malloc");
        got += sz;
    }
    for (long i = 0; i < j->count; i += 4)
        free(j->ptr[i]);
}

/* MIB MiB in all: two thirds in main_arena's brk heap, a third in one
 * thread's arena (whose 64 MiB heaps then chain). */
static void mode_big(long mib)
{
    struct worker w;
    struct big_job main_job = { .bytes = (size_t)mib * MiB / 3 * 2 };
    struct big_job thread_job = { .bytes = (size_t)mib * MiB / 3 };
    demo_check(mib > 0, "size");
    start_worker(&w, 1, big_work, &thread_job);
    big_work(0, &main_job);
    fact("big.blocks.t0=%ld", main_job.count);
    fact("big.blocks.t1=%ld", thread_job.count);
    report(1);
    demo_stop("heap");
    release_and_join(&w, 1);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* before any allocation */
    sem_init(&release_sem, 0, 0);

    const char *mode = argc > 1 ? argv[1] : "basic";
    demo_fact_pid();
    demo_fact_globals();
    fact("mode=%s", mode);

    if (strcmp(mode, "basic") == 0) {
        mode_basic();
    } else if (strcmp(mode, "random") == 0) {
        demo_check(argc >= 4, "usage: malloc_sizes random SEED COUNT [T]");
        mode_random((uint64_t)demo_arg_long(argv[2], 0),
                    demo_arg_long(argv[3], 0),
                    (int)demo_arg_long(argc > 4 ? argv[4] : NULL, 3));
    } else if (strcmp(mode, "threshold") == 0) {
        mode_threshold();
    } else if (strcmp(mode, "entries") == 0) {
        mode_entries();
    } else if (strcmp(mode, "many") == 0) {
        mode_many(demo_arg_long(argc > 2 ? argv[2] : NULL, 100000),
                  demo_arg_long(argc > 3 ? argv[3] : NULL, 0));
    } else if (strcmp(mode, "threads") == 0) {
        demo_check(argc >= 3, "usage: malloc_sizes threads N [EXITED [ARENA_MAX]]");
        mode_threads((int)demo_arg_long(argv[2], 0),
                     (int)demo_arg_long(argc > 3 ? argv[3] : NULL, 0),
                     (int)demo_arg_long(argc > 4 ? argv[4] : NULL, 0));
    } else if (strcmp(mode, "big") == 0) {
        mode_big(demo_arg_long(argc > 2 ? argv[2] : NULL, 300));
    } else {
        demo_check(0, "usage: malloc_sizes [basic|random|threshold|entries|many|threads|big]");
    }
    demo_done();
    return 0;
}
