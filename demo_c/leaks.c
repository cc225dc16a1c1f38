/*
 * leaks - known reachable and leaked heap objects, for heapleaks and heaprefs.
 *
 * Reachable, each through one kind of root (fact reach.NAME=user address):
 *   array     g_array[0] (a global array)
 *   list0..2  g_list -> list0 -> list1 -> list2 (a global linked list)
 *   interior  g_interior points 24 bytes into it
 *   inmmap    its only pointer is in a chunk above the mmap threshold (mmapped, itself reachable
 *             from g_big; fact reach.big)
 *   holder    a chunk of thread "arena"'s arena, from g_holder; other: only in holder
 *   local     a local of thread "local", blocked in a live frame
 *   arenalocal a local of thread "arena" (the first thread: its stack lies right below the main
 *             thread's TLS block; fact arenalocal.slot: where)
 *   tls       a __thread variable of the main thread
 *   register  only in register r12 of thread "reg" (blocked in a syscall, other registers clear)
 *   rawmmap   only in a page from mmap (fact raw.page)
 *   multi     in g_array[1], in list0->extra, and (stale) in a freed chunk
 * Leaked (fact leak.NAME=user address; leak.NAME.unreferenced=0|1):
 *   chain0..2 chain0 -> chain1 -> chain2, no pointer to chain0
 *   cyc0, cyc1 a cycle with no way in, each starting with &cyc_ops (a signature)
 *   infree    its only pointer is in a freed chunk (fact free.holder)
 *   dead      its only copy is in a dead frame far below SP (fact dead.slot: where)
 * libc.file: a FILE the demo opened and forgot (libc still lists it: reachable).
 * refs.multi.N: the addresses of the words that point at multi (static, chunk, free chunk).
 * Stop "leaks"; then every leaked object is freed (through pointers kept XOR-hidden) and stop
 * "freed" follows.  Registers and the red zone are cleared before each stop.
 *
 * `leaks bench N MIB`: a million-chunk heap and 100 MiB of roots for benchmarks/leak_scan.py.
 * `leaks random SEED N`: a random graph of N objects (edges from a seeded generator, some
 * objects held by g_roots); facts rand.N=address and rand.N.leaked=0|1, computed here by a
 * search from the roots, then stop "random".
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KEY ((uintptr_t)0x5a5a5a5a5a5a5a5aULL)
#define MAX_HIDDEN 16

struct node {
    struct node *next;
    void *extra;
    long payload[4];
};

struct ops {
    void (*fn)(void);
};
static void cyc_method(void) {}
const struct ops cyc_ops = {cyc_method};

struct cyc {
    const struct ops *ops;
    struct cyc *peer;
    long payload[2];
};

void *g_array[4];
struct node *g_list;
char *g_interior;
void **g_big;
void **g_holder;
static __thread void *tls_ptr;
void *volatile g_raw;

static uintptr_t hidden[MAX_HIDDEN]; /* leaked objects, XOR-hidden so that they stay leaked */
static int n_hidden;

static pthread_barrier_t ready, release;
static volatile int reg_ready; /* thread "reg" has its pointer in r12 only */

static void hide(void *p)
{
    hidden[n_hidden++] = (uintptr_t)p ^ KEY;
}

/* Zeroes `n` bytes of dead stack below the caller (stale copies from earlier calls). */
static void __attribute__((noinline)) scrub_stack(void)
{
    volatile char buf[64 * 1024];

    memset((char *)buf, 0, sizeof buf);
}

/* Zeroes only the caller's red zone and a little more, leaving deep dead frames alone. */
static void __attribute__((noinline)) scrub_red_zone(void)
{
    volatile char buf[1024];

    memset((char *)buf, 0, sizeof buf);
}

/* Every caller-saved general register and the callee-saved ones main does not need. */
#define CLEAR_REGISTERS()                                                                       \
    asm volatile("xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\t"                 \
                 "xor %%esi, %%esi\n\txor %%edi, %%edi\n\txor %%r8d, %%r8d\n\t"                 \
                 "xor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\txor %%r11d, %%r11d\n\t"             \
                 "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2"            \
                 ::: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0", "xmm1", \
                 "xmm2", "memory")

/* A local of the first thread, near the top of its stack: glibc maps that stack right below
 * the main thread's TLS block, so the slot is also a few KiB below main's thread pointer. */
static void __attribute__((noinline)) arena_wait(void)
{
    void *volatile mine = malloc(56);

    fact("reach.arenalocal=0x%lx", (unsigned long)mine);
    fact("arenalocal.slot=0x%lx", (unsigned long)&mine);
    scrub_red_zone();
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release);
    free(mine);
}

static void *thread_arena(void *arg)
{
    (void)arg;
    g_holder = calloc(4, sizeof(void *));
    void *other = malloc(72);
    g_holder[2] = other;
    fact("reach.holder=0x%lx", (unsigned long)g_holder);
    fact("reach.other=0x%lx", (unsigned long)other);
    other = NULL;
    scrub_stack();
    arena_wait();
    return NULL;
}

static void __attribute__((noinline)) local_wait(void)
{
    void *volatile local = malloc(88);

    fact("reach.local=0x%lx", (unsigned long)local);
    fact("local.slot=0x%lx", (unsigned long)&local);
    scrub_red_zone();
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release);
    free(local);
}

static void *local_thread(void *arg)
{
    (void)arg;
    scrub_stack();
    local_wait();
    return NULL;
}

/* Puts `p` in r12, clears every other register it can, and waits in pause(2) until a signal
 * (none comes: the thread ends with the process). */
static void *thread_register(void *arg)
{
    (void)arg;
    void *volatile p = malloc(104);

    fact("reach.register=0x%lx", (unsigned long)p);
    void *v = p;
    p = NULL;
    scrub_stack();
    asm volatile("mov %0, %%r12\n\tmovq $0, %0\n\tmovl $1, %1\n\t"
                 "xor %%ebx, %%ebx\n\txor %%r13d, %%r13d\n\txor %%r14d, %%r14d\n\t"
                 "xor %%r15d, %%r15d\n\txor %%edx, %%edx\n\txor %%esi, %%esi\n\t"
                 "xor %%edi, %%edi\n\txor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\t"
                 "xor %%r10d, %%r10d\n\t"
                 "1: mov $34, %%eax\n\tsyscall\n\tjmp 1b"
                 : "+m"(v), "=m"(reg_ready) : : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
                   "r11", "r12", "r13", "r14", "r15", "memory");
    return NULL;
}

static void build_reachable(void)
{
    g_array[0] = malloc(24);
    fact("reach.array=0x%lx", (unsigned long)g_array[0]);

    struct node *prev = NULL;
    for (int i = 2; i >= 0; i--) {
        struct node *n = calloc(1, sizeof *n);
        n->next = prev;
        prev = n;
    }
    g_list = prev;
    for (int i = 0; i < 3; i++, prev = prev->next)
        fact("reach.list%d=0x%lx", i, (unsigned long)prev);

    char *in = malloc(64);
    g_interior = in + 24;
    fact("reach.interior=0x%lx", (unsigned long)in);

    g_big = calloc(1, 256 * 1024); /* above the mmap threshold */
    g_big[100] = malloc(40);
    fact("reach.big=0x%lx", (unsigned long)g_big);
    fact("reach.inmmap=0x%lx", (unsigned long)g_big[100]);

    tls_ptr = malloc(56);
    fact("reach.tls=0x%lx", (unsigned long)tls_ptr);

    void **page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    demo_check(page != MAP_FAILED, "mmap");
    page[3] = malloc(120);
    g_raw = page;
    fact("raw.page=0x%lx", (unsigned long)page);
    fact("reach.rawmmap=0x%lx", (unsigned long)page[3]);

    void *multi = malloc(136);
    g_array[1] = multi;
    g_list->extra = multi;
    void **stale = malloc(64);
    stale[3] = multi;
    unsigned long stale_slot = (unsigned long)&stale[3];
    free(stale);
    fact("reach.multi=0x%lx", (unsigned long)multi);
    fact("refs.multi.0=0x%lx", (unsigned long)&g_array[1]);
    fact("refs.multi.1=0x%lx", (unsigned long)&g_list->extra);
    fact("refs.multi.2=0x%lx", stale_slot);
}

static void build_leaks(void)
{
    struct node *c2 = calloc(1, sizeof *c2), *c1 = calloc(1, sizeof *c1), *c0 = calloc(1, sizeof *c0);
    c0->next = c1;
    c1->next = c2;
    fact("leak.chain0=0x%lx", (unsigned long)c0);
    fact("leak.chain1=0x%lx", (unsigned long)c1);
    fact("leak.chain2=0x%lx", (unsigned long)c2);
    fact("leak.chain0.unreferenced=1");
    fact("leak.chain1.unreferenced=0");
    fact("leak.chain2.unreferenced=0");
    hide(c0), hide(c1), hide(c2);

    struct cyc *y0 = calloc(1, sizeof *y0), *y1 = calloc(1, sizeof *y1);
    y0->ops = y1->ops = &cyc_ops;
    y0->peer = y1;
    y1->peer = y0;
    fact("leak.cyc0=0x%lx", (unsigned long)y0);
    fact("leak.cyc1=0x%lx", (unsigned long)y1);
    fact("leak.cyc0.unreferenced=0");
    fact("leak.cyc1.unreferenced=0");
    fact("cyc_ops=0x%lx", (unsigned long)&cyc_ops);
    hide(y0), hide(y1);

    void *lost = malloc(152);
    void **holder = malloc(48);
    holder[2] = lost;
    unsigned long holder_at = (unsigned long)holder, holder_slot = (unsigned long)&holder[2];
    free(holder);
    fact("leak.infree=0x%lx", (unsigned long)lost);
    fact("leak.infree.unreferenced=1");
    fact("free.holder=0x%lx", holder_at);
    fact("free.slot=0x%lx", holder_slot);
    hide(lost);
}

/* Leaves the only copy of a new object deep in this frame, which is dead once it returns. */
static void __attribute__((noinline)) dead_frame(void)
{
    void *volatile pad[2048];

    pad[0] = malloc(168);
    hide(pad[0]);
    fact("leak.dead=0x%lx", (unsigned long)pad[0]);
    fact("leak.dead.unreferenced=1");
    fact("dead.slot=0x%lx", (unsigned long)&pad[0]);
}

/* One random graph: N objects of random sizes, each with up to 3 random out-edges, a few of
 * them held by g_roots.  The demo computes the leaked set itself from its own graph. */
static void random_graph(unsigned seed, int n)
{
    static unsigned char *seen;
    static int *stack;
    int nroots = n / 8 + 1;

    srandom(seed);
    /* the bookkeeping is hidden from the scan: XOR'd pointers in memory the demo maps itself */
    uintptr_t *keep = mmap(NULL, (size_t)n * 8 + 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    seen = mmap(NULL, (size_t)n + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    stack = mmap(NULL, (size_t)n * sizeof(int) + 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void **roots = calloc((size_t)nroots, sizeof(void *));
    demo_check(keep != MAP_FAILED && seen != MAP_FAILED && stack != MAP_FAILED && roots, "mmap");
    int (*edges)[3] = mmap(NULL, (size_t)n * sizeof *edges + 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < n; i++) {
        size_t words = 4 + (size_t)(random() % 5); /* o[0], then up to 3 edges */
        void **o = calloc(words, sizeof(void *));
        keep[i] = (uintptr_t)o ^ KEY;
        o[0] = (void *)(uintptr_t)(0x1000 + i); /* not a pointer */
    }
    for (int i = 0; i < n; i++) {
        void **o = (void **)(keep[i] ^ KEY);
        for (int k = 0; k < 3; k++) {
            edges[i][k] = random() % 3 == 0 ? (int)(random() % n) : -1;
            if (edges[i][k] >= 0)
                o[1 + k] = (char *)(keep[edges[i][k]] ^ KEY) + (random() % 2) * 8;
        }
    }
    int top = 0;
    for (int r = 0; r < nroots; r++) {
        int i = (int)(random() % n);
        roots[r] = (void *)(keep[i] ^ KEY);
        if (!seen[i])
            seen[i] = 1, stack[top++] = i;
    }
    while (top > 0) {
        int i = stack[--top];
        for (int k = 0; k < 3; k++) {
            int j = edges[i][k];
            if (j >= 0 && !seen[j])
                seen[j] = 1, stack[top++] = j;
        }
    }
    g_array[2] = roots;
    fact("rand.count=%d", n);
    for (int i = 0; i < n; i++) {
        fact("rand.%d=0x%lx", i, (unsigned long)(keep[i] ^ KEY));
        fact("rand.%d.leaked=%d", i, !seen[i]);
    }
    fact("reach.roots=0x%lx", (unsigned long)roots);
}

/* `leaks bench N MIB`: N objects of 24 bytes; every tenth is leaked (nothing points at it, it
 * points at the next one), the others point at a pseudo-random other and are held by MIB MiB
 * of an anonymous mapping full of pointers to them.  For benchmarks/leak_scan.py. */
static void bench(long n, long mib)
{
    uintptr_t *keep = mmap(NULL, (size_t)n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t words = (size_t)mib << 17;
    void **root = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    demo_check(keep != MAP_FAILED && root != MAP_FAILED, "mmap");
    for (long i = 0; i < n; i++)
        keep[i] = (uintptr_t)malloc(24) ^ KEY;
    for (long i = 0; i < n; i++) {
        void **o = (void **)(keep[i] ^ KEY);
        long j = i % 10 == 0 ? (i + 1) % n : (i * 7919 + 13) % n;
        if (j % 10 == 0)
            j = (j + 1) % n; /* never at a leaked one */
        o[0] = (void *)(keep[j] ^ KEY);
    }
    for (size_t k = 0; k < words; k++) {
        long i = (long)(k % (size_t)n);
        root[k] = i % 10 == 0 ? (void *)(uintptr_t)k : (void *)(keep[i] ^ KEY);
    }
    fact("bench.leaked=%ld", (n + 9) / 10);
    fact("bench.first=0x%lx", (unsigned long)(keep[1 % n] ^ KEY));
}

int main(int argc, char **argv)
{
    pthread_t t[3];

    demo_fact_pid();
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        bench(demo_arg_long(argc > 2 ? argv[2] : NULL, 1000000), demo_arg_long(argc > 3 ? argv[3] : NULL, 100));
        scrub_stack();
        CLEAR_REGISTERS();
        demo_stop("bench");
        demo_done();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "random") == 0) {
        random_graph((unsigned)demo_arg_long(argc > 2 ? argv[2] : NULL, 1),
                     (int)demo_arg_long(argc > 3 ? argv[3] : NULL, 200));
        scrub_stack();
        CLEAR_REGISTERS();
        demo_stop("random");
        demo_done();
        return 0;
    }
    /* libc's own allocations: a FILE and its buffer, whose only pointers are libc's */
    FILE *file = fopen("/dev/null", "r");
    demo_check(file != NULL && fgetc(file) == EOF, "fopen");
    fact("libc.file=0x%lx", (unsigned long)file);
    file = NULL;
    pthread_barrier_init(&ready, NULL, 3);
    pthread_barrier_init(&release, NULL, 3);
    pthread_create(&t[0], NULL, thread_arena, NULL);
    pthread_create(&t[1], NULL, local_thread, NULL);
    pthread_create(&t[2], NULL, thread_register, NULL);
    build_reachable();
    build_leaks();
    pthread_barrier_wait(&ready);
    while (!reg_ready)
        usleep(1000);
    scrub_stack();
    dead_frame();
    scrub_red_zone();
    CLEAR_REGISTERS();
    demo_stop("leaks");

    for (int i = 0; i < n_hidden; i++)
        free((void *)(hidden[i] ^ KEY));
    n_hidden = 0;
    scrub_stack();
    CLEAR_REGISTERS();
    demo_stop("freed");
    pthread_barrier_wait(&release);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    demo_done();
    return 0;
}
