/*
 * heap_stacks - experiment: threads whose stacks are malloc'd blocks, and a
 * memfd mapped read+execute (as a JIT does).
 *
 * T1 ("big") runs on a 512 KiB stack from malloc (above the mmap threshold:
 * an mmapped chunk of its own); T2 ("small") on a 64 KiB stack from malloc
 * (inside the [heap]), both given to pthread_attr_setstack.  Each writes
 * DEPTH KiB of its stack below its first frame, then waits.  The heap
 * around T2's stack is written too (blocks before and after it), so a page
 * map read over the whole heap would find written pages far below T2's
 * stack.  A memfd "gdbext-jit" of one page is mapped PROT_READ|PROT_EXEC.
 * All threads stay alive through the stop "stacks".
 *
 * "heap_stacks merged" adds T3 ("plain") on a 256 KiB stack mmapped by hand
 * right below T1's block, so that the kernel merges the two mappings.
 *
 * Facts: {big,small}.{tid,buffer,size,local,stack_addr,stack_size}
 * (buffer/size: the malloc'd block; stack_*: pthread_getattr_np),
 * {big,small}.depth (bytes written below the first frame), merged, plain.*,
 * before.block, after.block, memfd.{addr,len,name}.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BIG_SIZE (512 * 1024)
#define SMALL_SIZE (64 * 1024)
#define DEPTH (16 * 1024)
#define PLAIN_SIZE (256 * 1024)

static pthread_barrier_t ready;   /* both threads have printed their facts */
static pthread_barrier_t release; /* main has passed its stop */

static void fact_stack(const char *prefix)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;

    demo_check(pthread_getattr_np(pthread_self(), &attr) == 0, "getattr");
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    fact("%s.stack_addr=0x%lx", prefix, (unsigned long)addr);
    fact("%s.stack_size=%zu", prefix, size);
}

/* Writes `n` bytes of stack below the caller's frame (a real use, not a read). */
static void __attribute__((noinline)) use_stack(size_t n)
{
    volatile char buf[DEPTH];

    memset((char *)buf, 0x5a, n < sizeof buf ? n : sizeof buf);
}

static void *stack_main(void *arg)
{
    const char *prefix = arg;
    volatile int local = 0;

    fact("%s.tid=%d", prefix, (int)demo_gettid());
    fact("%s.local=0x%lx", prefix, (unsigned long)&local);
    fact("%s.depth=%d", prefix, DEPTH);
    fact_stack(prefix);
    use_stack(DEPTH);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release);
    return NULL;
}

static pthread_t start_on(const char *prefix, void *buf, size_t size)
{
    pthread_attr_t attr;
    pthread_t t;

    fact("%s.buffer=0x%lx", prefix, (unsigned long)buf);
    fact("%s.size=%zu", prefix, size);
    pthread_attr_init(&attr);
    demo_check(pthread_attr_setstack(&attr, buf, size) == 0, "setstack");
    demo_check(pthread_create(&t, &attr, stack_main, (void *)prefix) == 0, "create");
    pthread_attr_destroy(&attr);
    return t;
}

static void map_memfd(void)
{
    long page = sysconf(_SC_PAGESIZE);
    int fd = memfd_create("gdbext-jit", 0);

    demo_check(fd >= 0, "memfd_create");
    demo_check(ftruncate(fd, page) == 0, "ftruncate");
    demo_check(write(fd, "\xc3", 1) == 1, "write"); /* ret */
    void *code = mmap(NULL, page, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    demo_check(code != MAP_FAILED, "mmap memfd");
    fact("memfd.addr=0x%lx", (unsigned long)code);
    fact("memfd.len=%ld", page);
    fact("memfd.name=gdbext-jit");
}

/* "merged": a third thread, "plain", on a stack mmapped by hand right below the big block's
 * mapping, which the kernel then merges with it: one mapping holds a plain stack and, in its
 * middle, the mmapped chunk.  Fact merged=1 when the address was free to take. */
static pthread_t start_below(char *big)
{
    long page = sysconf(_SC_PAGESIZE);
    char *mapping = (char *)((unsigned long)(big - 16) & ~(unsigned long)(page - 1));
    void *plain = mmap(mapping - PLAIN_SIZE, PLAIN_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (plain == MAP_FAILED || (char *)plain != mapping - PLAIN_SIZE) {
        fact("merged=0");
        plain = mmap(NULL, PLAIN_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        demo_check(plain != MAP_FAILED, "mmap");
    } else {
        fact("merged=1");
    }
    return start_on("plain", plain, PLAIN_SIZE);
}

int main(int argc, char **argv)
{
    int merged = argc > 1 && strcmp(argv[1], "merged") == 0;

    demo_fact_pid();
    pthread_barrier_init(&ready, NULL, 3 + merged);
    pthread_barrier_init(&release, NULL, 3 + merged);

    /* Written heap blocks on both sides of the small stack. */
    char *before = malloc(32 * 1024);
    char *small = malloc(SMALL_SIZE);
    char *after = malloc(32 * 1024);
    char *big = malloc(BIG_SIZE);
    demo_check(before && small && after && big, "malloc");
    memset(before, 1, 32 * 1024);
    memset(after, 2, 32 * 1024);
    fact("before.block=0x%lx", (unsigned long)before);
    fact("after.block=0x%lx", (unsigned long)after);

    pthread_t t1 = start_on("big", big, BIG_SIZE);
    pthread_t t2 = start_on("small", small, SMALL_SIZE);
    pthread_t t3 = merged ? start_below(big) : t2;
    map_memfd();
    pthread_barrier_wait(&ready);
    demo_stop("stacks");
    pthread_barrier_wait(&release);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    if (merged)
        pthread_join(t3, NULL);
    demo_done();
    return 0;
}
