/*
 * malloc_anchors MODE - how the heap commands find glibc malloc's anchors
 * (main_arena, mp_, each thread's tcache) when something stands in the way.
 *
 *   malloc_anchors plain         a small single-threaded heap: tcache and
 *                                fastbin chunks, an unsorted one, one mmapped
 *                                (for checkpoint/restart)
 *   own_anchors [plain]          (own_anchors.c: this file built with
 *                                OWN_ANCHORS) the same heap in a program
 *                                with its own globals named main_arena and
 *                                mp_ (an embedded allocator's arena and
 *                                parameters), which must not be taken for
 *                                glibc's
 *   malloc_anchors tcache_entry [BAD=1]
 *                                five chunks in tcache[0], then BAD other
 *                                entries of the thread's tcache_perthread_struct
 *                                overwritten with a pointer out of the heap
 *   malloc_anchors arena_bin     main_arena itself damaged: the unsorted bin's
 *                                fd (in main_arena, found through the one
 *                                chunk in that bin) overwritten with a
 *                                pointer out of the heap
 *   malloc_anchors mremap [N=3]  the plain heap, and one mmapped chunk grown
 *                                N times by realloc (glibc moves it with
 *                                mremap; from 2.43 each one adds 16 bytes
 *                                too many to mp_.mmapped_mem)
 *
 * Facts at "heap": the malloc_info XML and mallinfo2.* (plain; the same
 * report as malloc_sizes), own.main_arena / own.mp_ (own_anchors),
 * tcache.entries (address of entries[0]), tcache.count (chunks freed into
 * tcache[0]), freed.K (their user pointers, last freed first),
 * corrupt.entry (address of the first overwritten entry), corrupt.index
 * (its index; the others follow it), corrupt.count (BAD), corrupt.value
 * (tcache_entry); unsorted.chunk (the freed chunk's header),
 * unsorted.bin (bin_at(main_arena, 1), the address its fd and bk held),
 * corrupt.entry, corrupt.value (arena_bin); mremap.count (N), mremap.user
 * (the grown chunk), mremap.usable (its malloc_usable_size) and the plain
 * report (mremap).  tcache_entry and arena_bin leave
 * with _exit(0) after the stop: no malloc or free runs on the damage.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reading and writing freed chunks and glibc's own lists is the point of two modes. */
#if defined(__GNUC__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

/* ---- an embedded allocator whose globals reuse glibc's names ---------- */

#ifdef OWN_ANCHORS
#include <pthread.h>

static void *idle_thread(void *arg)
{
    return arg;
}

/* Named as dlmalloc names its own: gdb finds a program's struct malloc_state before libc's. */
struct malloc_state {
    struct malloc_state *next; /* a ring of one, as glibc's arenas are */
    char *top;
    size_t system_mem;
    char *bins[254];
    char pool[4096];
};

struct malloc_par {
    size_t threshold;
    char *sbrk_base;
    size_t counts[16];
};

struct malloc_state main_arena;
struct malloc_par mp_;

/* Fills the embedded arena with pointers into its own pool: the fields glibc's malloc_state
 * has at the same offsets then hold values that look like pointers, not zeros. */
static void pool_init(void)
{
    main_arena.next = &main_arena;
    main_arena.top = main_arena.pool + 64;
    main_arena.system_mem = sizeof main_arena.pool;
    for (int i = 0; i < 254; i++)
        main_arena.bins[i] = main_arena.pool + 16 * (i % 200);
    mp_.threshold = 4096;
    mp_.sbrk_base = main_arena.pool;
    for (int i = 0; i < 16; i++)
        mp_.counts[i] = (size_t)i * 3;
    fact("own.main_arena=0x%lx", (unsigned long)&main_arena);
    fact("own.mp_=0x%lx", (unsigned long)&mp_);
    /* Linked statically, a program names its glibc's version only in the string libthread_db
     * checks, which comes with pthread_create (gdbext reads it there). */
    pthread_t th;
    demo_check(pthread_create(&th, NULL, idle_thread, NULL) == 0, "pthread_create");
    demo_check(pthread_join(th, NULL) == 0, "pthread_join");
}
#else
static void pool_init(void)
{
}
#endif

/* ---- glibc's heap ------------------------------------------------------ */

static int same_mallinfo(const struct mallinfo2 *a, const struct mallinfo2 *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

static void report(void)
{
    fact("sbrk0=0x%lx", (unsigned long)sbrk(0));
    struct mallinfo2 a = mallinfo2();
    demo_puts("GDBEXT_MALLOC_INFO_BEGIN\n");
    malloc_info(0, stdout);
    demo_puts("GDBEXT_MALLOC_INFO_END\n");
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

static void *must_malloc(size_t n)
{
    void *p = malloc(n);
    demo_check(p != NULL, "malloc");
    return p;
}

/* Seven 0x20 chunks fill tcache[0], two more go to a fastbin; one 0x510 chunk behind a live
 * guard goes to the unsorted bin; one block is mmapped; a few stay live. */
static void small_heap(void)
{
    void *small[9], *big, *guard, *mapped;
    for (int i = 0; i < 9; i++)
        small[i] = must_malloc(0x18);
    big = must_malloc(0x500);
    guard = must_malloc(0x40);
    mapped = must_malloc(256 * 1024);
    for (int i = 0; i < 9; i++)
        free(small[i]);
    free(big);
    fact("live.guard=0x%lx", (unsigned long)guard);
    fact("live.mapped=0x%lx", (unsigned long)mapped);
}

/* One mmapped chunk grown `n` times by realloc: each growth of an mmapped chunk is an mremap. */
static void grown_by_mremap(int n)
{
    size_t size = 256 * 1024;
    void *p = must_malloc(size);
    for (int i = 0; i < n; i++) {
        size += 64 * 1024 + 100;
        p = realloc(p, size);
        demo_check(p != NULL, "realloc");
    }
    fact("mremap.count=%d", n);
    fact("mremap.user=0x%lx", (unsigned long)p);
    fact("mremap.usable=%zu", malloc_usable_size(p));
}

/* ---- a damaged tcache ------------------------------------------------- */

#define TCACHE_COUNT 5
#define BAD_INDEX 9
#define BAD_VALUE 0x4141414141414140UL

/* Address of entries[0] of this thread's tcache_perthread_struct: the word that holds `head`,
 * the chunk freed last into tcache[0].  Before glibc 2.43 the struct is the heap's first chunk,
 * a few hundred bytes below; from 2.43 glibc makes it at the thread's first free, so above the
 * chunks freed (searched first, up to the break: nothing else there holds `head`).  Seen, not
 * computed, so that every glibc's layout fits. */
static uintptr_t *find_entries0(void *head)
{
    uintptr_t *w = (uintptr_t *)head;
    for (uintptr_t *end = sbrk(0); w + 1 <= end; w++)
        if (*w == (uintptr_t)head)
            return w;
    w = (uintptr_t *)head - 2;
    for (int i = 0; i < 4096; i++, w--)
        if (*w == (uintptr_t)head)
            return w;
    demo_check(0, "tcache entries[0] not found near the first chunks");
    return NULL;
}

static void tcache_entry(int bad)
{
    void *p[TCACHE_COUNT];
    for (int i = 0; i < TCACHE_COUNT; i++)
        p[i] = must_malloc(0x18);
    must_malloc(0x40); /* a live chunk between them and top */
    for (int i = 0; i < TCACHE_COUNT; i++)
        free(p[i]);
    for (int i = 0; i < TCACHE_COUNT; i++)
        fact("freed.%d=0x%lx", i, (unsigned long)p[TCACHE_COUNT - 1 - i]);
    uintptr_t *entries = find_entries0(p[TCACHE_COUNT - 1]);
    fact("tcache.entries=0x%lx", (unsigned long)entries);
    fact("tcache.count=%d", TCACHE_COUNT);
    demo_check(bad >= 1 && BAD_INDEX + bad <= 64, "bad entry count");
    for (int i = 0; i < bad; i++)
        entries[BAD_INDEX + i] = BAD_VALUE;
    fact("corrupt.entry=0x%lx", (unsigned long)&entries[BAD_INDEX]);
    fact("corrupt.index=%d", BAD_INDEX);
    fact("corrupt.count=%d", bad);
    fact("corrupt.value=0x%lx", BAD_VALUE);
}

/* One 0x510 chunk in the unsorted bin, behind a live guard: its fd and bk both hold
 * bin_at(main_arena, 1), whose own fd is main_arena's bins[0]: overwrite that. */
static void arena_bin(void)
{
    void *u = must_malloc(0x500);
    must_malloc(0x40);
    free(u);
    uintptr_t bin = ((uintptr_t *)u)[0];
    demo_check(bin == ((uintptr_t *)u)[1], "the unsorted bin holds one chunk");
    fact("unsorted.chunk=0x%lx", (unsigned long)((char *)u - 2 * sizeof(size_t)));
    fact("unsorted.bin=0x%lx", (unsigned long)bin);
    uintptr_t *fd = (uintptr_t *)(bin + 2 * sizeof(size_t));
    *fd = BAD_VALUE;
    fact("corrupt.entry=0x%lx", (unsigned long)fd);
    fact("corrupt.value=0x%lx", BAD_VALUE);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    demo_fact_pid();
    const char *mode = argc > 1 ? argv[1] : "plain";
    pool_init();
    if (strcmp(mode, "plain") == 0) {
        small_heap();
        report();
        demo_stop("heap");
    } else if (strcmp(mode, "mremap") == 0) {
        small_heap();
        grown_by_mremap((int)demo_arg_long(argc > 2 ? argv[2] : NULL, 3));
        report();
        demo_stop("heap");
    } else if (strcmp(mode, "tcache_entry") == 0 || strcmp(mode, "arena_bin") == 0) {
        if (strcmp(mode, "tcache_entry") == 0)
            tcache_entry((int)demo_arg_long(argc > 2 ? argv[2] : NULL, 1));
        else
            arena_bin();
        demo_stop("heap");
        demo_done();
        _exit(0);
    } else {
        demo_check(0, "usage: malloc_anchors [plain|mremap|tcache_entry|arena_bin]");
    }
    demo_done();
    return 0;
}
