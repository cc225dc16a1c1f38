/*
 * heap_corrupt MODE - experiment: can the heap walker survive corruption?
 *
 * Builds a small heap, corrupts one chunk by writing through a pointer,
 * reports it, stops at "corrupt" and leaves with _exit(0) without calling
 * malloc or free again (glibc would abort on the damage).
 *
 *   size         a used chunk's size field = 0x4141414141414141
 *   tcache_next  a tcache entry's next decodes to 0xdeadbeef000
 *   fastbin_loop fastbin A -> B -> A
 * (list pointers written safe-linking encoded when this glibc encodes them:
 * 2.32 and later; seen, not assumed, since one build runs under several.)
 *   unsorted_bk  an unsorted chunk's bk = 0x4242424242424242
 *   top_size     the top chunk's size = 0xffffffffffffff01
 *   thread_zero_size  in a second thread (its own arena's heap), the size
 *                field of the chunk just before top = 1 (size 0, PREV_INUSE):
 *                what ends a heap its arena outgrew, but top is after it
 *
 * corrupt.chunk is the chunk header (user - 16), corrupt.user the user
 * pointer; live.K are user pointers of live chunks around it.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writing into freed chunks is the whole point here.  (gcc 12 has the warning; older ones
 * would warn about the unknown option instead.) */
#if defined(__GNUC__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

#include "heap_demo.h"

static void *chunk_of(void *user)
{
    return (char *)user - 16;
}

static void report(void *user, const char *field, uintptr_t value)
{
    fact("corrupt.chunk=0x%lx", (unsigned long)chunk_of(user));
    fact("corrupt.user=0x%lx", (unsigned long)user);
    fact("corrupt.field=%s", field);
    fact("corrupt.value=0x%lx", (unsigned long)value);
}

static void mode_size(void)
{
    live(0x18);
    live(0x28);
    char *victim = malloc(0x38);
    demo_check(victim != NULL, "malloc");
    live(0x48);
    live(0x58);

    uintptr_t *size = (uintptr_t *)(victim - 8);
    fact("corrupt.original=0x%lx", (unsigned long)*size);
    *size = 0x4141414141414141UL;
    report(victim, "size", *size);
}

static void mode_tcache_next(void)
{
    live(0x18);
    char *other = malloc(0x38);
    live(0x18);
    char *victim = malloc(0x38);
    live(0x18);
    demo_check(other && victim, "malloc");
    free(other);
    see_safe_linking(other);
    free(victim); /* tcache 0x40: victim -> other */
    fact("freed.0=0x%lx", (unsigned long)other);
    fact("freed.1=0x%lx", (unsigned long)victim);

    uintptr_t target = 0xdeadbeef000UL;
    uintptr_t *next = (uintptr_t *)victim; /* tcache_entry.next */
    fact("corrupt.original=0x%lx", (unsigned long)*next);
    *next = PROTECT_PTR(next, target);
    report(victim, "next", *next);
    fact("corrupt.target=0x%lx", (unsigned long)target);
}

static void mode_fastbin_loop(void)
{
    enum { FILL = 7 };
    char *fill[FILL];

    live(0x18);
    for (int i = 0; i < FILL; i++)
        fill[i] = malloc(0x38);
    char *a = malloc(0x38);
    live(0x18);
    char *b = malloc(0x38);
    live(0x18);
    demo_check(a && b, "malloc");
    for (int i = 0; i < FILL; i++)
        free(fill[i]); /* tcache 0x40 is now full */
    free(b);
    see_safe_linking(b);
    free(a); /* fastbin 0x40: A -> B -> NULL */
    fact("fast.a=0x%lx", (unsigned long)chunk_of(a));
    fact("fast.b=0x%lx", (unsigned long)chunk_of(b));

    uintptr_t *fd = (uintptr_t *)b; /* malloc_chunk.fd of B */
    fact("corrupt.original=0x%lx", (unsigned long)*fd);
    *fd = PROTECT_PTR(fd, chunk_of(a)); /* B -> A: a cycle */
    report(b, "fd", *fd);
    fact("corrupt.target=0x%lx", (unsigned long)chunk_of(a));
}

static void mode_unsorted_bk(void)
{
    live(0x18);
    char *victim = malloc(0x500); /* above tcache, not a fastbin size */
    live(0x18);                   /* keeps it away from top */
    demo_check(victim != NULL, "malloc");
    free(victim);

    uintptr_t *bk = (uintptr_t *)victim + 1; /* malloc_chunk.bk */
    fact("corrupt.original=0x%lx", (unsigned long)*bk);
    *bk = 0x4242424242424242UL;
    report(victim, "bk", *bk);
}

static void mode_top_size(void)
{
    live(0x18);
    live(0x28);
    char *last = live(0x18); /* fresh heap, nothing freed: from top */

    size_t last_size = ((size_t *)last)[-1] & ~(size_t)7;
    char *top = chunk_of(last) + last_size;
    demo_check((uintptr_t)top < (uintptr_t)sbrk(0), "top below break");

    uintptr_t *size = (uintptr_t *)(top + 8);
    fact("corrupt.original=0x%lx", (unsigned long)*size);
    *size = 0xffffffffffffff01UL;
    report(top + 16, "size", *size);
    fact("sbrk0=0x%lx", (unsigned long)sbrk(0));
}

static void *zero_size_in_thread(void *arg)
{
    (void)arg;
    live(0x18);
    live(0x28);
    char *victim = malloc(0x38); /* fresh thread heap, nothing freed: cut from top, top follows */
    demo_check(victim != NULL, "malloc");
    uintptr_t *size = (uintptr_t *)(victim - 8);
    fact("corrupt.original=0x%lx", (unsigned long)*size);
    *size = 1;
    report(victim, "size", *size);
    demo_stop("corrupt");
    demo_done();
    _exit(0); /* no exit handlers: nothing may touch the broken heap */
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";

    demo_fact_pid();
    fact("mode=%s", mode);
    if (strcmp(mode, "size") == 0)
        mode_size();
    else if (strcmp(mode, "tcache_next") == 0)
        mode_tcache_next();
    else if (strcmp(mode, "fastbin_loop") == 0)
        mode_fastbin_loop();
    else if (strcmp(mode, "unsorted_bk") == 0)
        mode_unsorted_bk();
    else if (strcmp(mode, "top_size") == 0)
        mode_top_size();
    else if (strcmp(mode, "thread_zero_size") == 0) {
        pthread_t t;
        demo_check(pthread_create(&t, NULL, zero_size_in_thread, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
    }
    else
        demo_check(0, "usage: heap_corrupt size|tcache_next|fastbin_loop|"
                      "unsorted_bk|top_size|thread_zero_size");

    demo_stop("corrupt");
    demo_done();
    _exit(0); /* no exit handlers: nothing may touch the broken heap */
}
