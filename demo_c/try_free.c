/*
 * try_free - pointers for tryfree and sizes for trymalloc, and glibc's own answer for each.
 *
 * Prepares valid, double-freed (tcache, fastbin or small bin, unsorted bin), misaligned,
 * foreign (stack, static), fake (planted chunk headers), mmapped and corrupted (bad next size,
 * bad prev_size, broken list links, a misaligned tcache link) pointers, prints each
 * ("GDBEXT_FACT ptr.NAME=0x..."), and stops at "prepared".  When continued, it forks one child
 * per pointer that really calls free(p) (and one per size that calls malloc(SIZE)) with
 * LIBC_FATAL_STDERR_=1, so that glibc's message lands on the child's stderr, a pipe, and
 * prints what happened: "GDBEXT_FACT free.NAME=abort|ok|signal N|message".  The children
 * share the heap as it was at the stop: the parent allocates nothing after it.
 *
 * Sizes (facts size.NAME=N): malloc.NAME=ok|0xCHUNK|... or abort|message.
 *
 *   try_free [thread]   thread: all of it in a second thread (its own arena, tcache, stack)
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

#define MAXP 32
static const char *names[MAXP];
static void *ptrs[MAXP];
static int np;
static const char *size_names[8];
static size_t sizes[8];
static int ns;

/* Static memory for the foreign and fake chunks, aligned as malloc aligns. */
static size_t static_zero[16] __attribute__((aligned(16)));
static size_t fake_tcache[16] __attribute__((aligned(16)));
static size_t fake_fast[32] __attribute__((aligned(16)));
static size_t fake_badnext[32] __attribute__((aligned(16)));

static void add(const char *name, void *p)
{
    names[np] = name;
    ptrs[np++] = p;
    fact("ptr.%s=0x%lx", name, (unsigned long)p);
}

static void add_size(const char *name, size_t n)
{
    size_names[ns] = name;
    sizes[ns++] = n;
    fact("size.%s=%lu", name, (unsigned long)n);
}

#define SZ(p) (((size_t *)(p))[-1]) /* a chunk's size field, from its user pointer */
#define PREV(p) (((size_t *)(p))[-2])

/* Runs fn(arg) in a child whose stderr is a pipe; prints what became of it. */
static void in_child(const char *kind, const char *name, int is_malloc, void *p, size_t n)
{
    int fds[2];
    demo_check(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    demo_check(pid >= 0, "fork");
    if (pid == 0) {
        dup2(fds[1], 2);
        if (is_malloc) {
            void *got = malloc(n);
            char line[64];
            int k = snprintf(line, sizeof line, "RETURNED 0x%lx\n", (unsigned long)got);
            (void)!write(2, line, k);
        } else {
            free(p);
        }
        _exit(0);
    }
    close(fds[1]);
    char buf[512];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)k;
    buf[got] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = 0;
    if (WIFEXITED(status))
        fact("%s.%s=ok|%s", kind, name, buf);
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
        fact("%s.%s=abort|%s", kind, name, buf);
    else
        fact("%s.%s=signal %d|%s", kind, name, WIFSIGNALED(status) ? WTERMSIG(status) : -1, buf);
}

/* Everything below, in the thread that calls it (a second thread: a thread arena's chunks). */
static void *prepare_and_try(void *arg)
{
    (void)arg;
    long stack_zero[16] __attribute__((aligned(16)));
    memset(stack_zero, 0, sizeof stack_zero);

    /* Every allocation first: a large request after the frees would consolidate the fast
     * chunks and a small one would cut the free chunks the cases need. */
    void *valid_small = malloc(0x28);
    void *a = malloc(0x500), *b = malloc(0x500);
    void *guard1 = malloc(0x18);
    void *t = malloc(0x38);
    void *f[24];
    for (int i = 0; i < 24; i++)
        f[i] = malloc(0x48);
    void *m = malloc(0x40000), *m2 = malloc(0x40000);
    void *c = malloc(0x500), *c_next = malloc(0x28);
    void *guard2 = malloc(0x18);
    void *u = malloc(0x4f8), *d = malloc(0x4f8);
    void *guard3 = malloc(0x18);
    void *u2 = malloc(0x4f8), *d2 = malloc(0x4f8);
    void *guard4 = malloc(0x18);
    void *x1 = malloc(0x68), *x2 = malloc(0x68);
    void *last = malloc(0x5000); /* the last chunk cut from top: top follows it */

    /* Then the frees, the tcache's first: 17 0x50 chunks fill its bin (7, or 16 from 2.43);
     * the rest go to a fastbin (before 2.43) or a small bin, the last freed at its head. */
    free(t);
    for (int i = 0; i < 23; i++)
        if ((i % 2 == 0 && i <= 12) || i > 12)
            free(f[i]);
    /* x2 heads the 0x70 bin; its next (x1, mangled from 2.32) made misaligned; x2 taken */
    free(x1);
    free(x2);
    ((size_t *)x2)[0] ^= 8;
    void *x2again = malloc(0x68);
    demo_check(x2again == x2, "x2 back from the tcache");
    free(a); /* the unsorted bin; b, after it, is in use */

    /* the corruptions */
    PREV(m2) += 0x10;
    SZ(c_next) = 0x1; /* the next chunk's size 0, PREV_INUSE set */
    SZ(d) &= ~(size_t)1; /* PREV_INUSE cleared, prev_size into the middle of u */
    PREV(d) = 0x100;
    SZ(d2) &= ~(size_t)1; /* prev_size right, u2's links pointing at static memory */
    PREV(d2) = SZ(u2) & ~(size_t)7;
    ((size_t *)u2)[0] = (size_t)fake_fast;
    ((size_t *)u2)[1] = (size_t)fake_fast;
    fake_tcache[1] = 0x41; /* a fake 0x40 chunk: the tcache takes it */
    fake_fast[1] = 0x51; /* a fake 0x50 chunk (its tcache bin full), sane next chunks */
    fake_fast[11] = 0x21;
    fake_fast[15] = 0x21;
    fake_badnext[1] = 0x51; /* the same, its next size 0 (PREV_INUSE only) */
    fake_badnext[11] = 0x1;

    add("null", NULL);
    add("valid_small", valid_small);
    add("merge_back", b);
    add("unsorted_double", a);
    add("tcache_double", t);
    add("fastbin_double", f[22]);
    add("valid_fast", f[1]);
    add("misaligned", (char *)valid_small + 8);
    add("stack", &stack_zero[2]);
    add("static", &static_zero[2]);
    add("fake_tcache", &fake_tcache[2]);
    add("fake_fast", &fake_fast[2]);
    add("fake_badnext", &fake_badnext[2]);
    add("mmapped", m);
    add("mmapped_bad", m2);
    add("bad_next_size", c);
    add("bad_prev_size", d);
    add("bad_unlink", d2);
    add("top", (char *)last + (SZ(last) & ~(size_t)7));

    add_size("tcache", 0x38);
    add_size("tcache_unaligned", 0x68);
    add_size("small", 0x108);
    add_size("top", 0x3000);
    add_size("mmap", 0x50000);

    (void)guard1;
    (void)guard2;
    (void)guard3;
    (void)guard4;
    (void)u;
    demo_stop("prepared");
    for (int i = 0; i < np; i++)
        in_child("free", names[i], 0, ptrs[i], 0);
    for (int i = 0; i < ns; i++)
        in_child("malloc", size_names[i], 1, NULL, sizes[i]);
    /* No return: a thread's exit empties its tcache, whose 0x70 bin is corrupt (and so would
     * the next malloc of that size) */
    demo_done();
    _exit(0);
}

int main(int argc, char **argv)
{
    setenv("LIBC_FATAL_STDERR_", "1", 1);
    demo_fact_pid();
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        pthread_t t;
        demo_check(pthread_create(&t, NULL, prepare_and_try, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
    } else {
        prepare_and_try(NULL);
    }
    return 0;
}
