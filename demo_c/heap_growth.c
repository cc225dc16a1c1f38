/*
 * heap_growth - the memory free() keeps, what malloc_trim(0) gives back, and
 * what changes between two stops (issue 15: heapstat, heapsnap).
 *
 * Transparent huge pages are off for the process (prctl), so the kernel does
 * not change pages behind malloc's back.  The main thread and one other
 * thread (which gets an arena of its own) each allocate BLOCKS blocks of
 * BLOCK bytes, above the tcache range and below the mmap threshold, write
 * every byte, then free every other one (the even ones: the last block stays,
 * so the frees never reach a top chunk).  The thread is joined.  Between
 * the main thread's allocations and its frees lie the two diff stops.
 *
 * Stop "trim": heapstat's prediction is taken here.  The demo then reads its
 * anonymous resident memory (/proc/self/smaps_rollup, "Anonymous:", read
 * with open/read into a stack buffer: no stdio, no malloc), calls
 * malloc_trim(0), reads it again and prints the drop.  Stop "trimmed".
 *
 * Stop "diff.a" (every main block in use, top the only free chunk but one
 * 24-byte chunk freed first, so that glibc 2.43 has made the tcache), then,
 * with nothing else allocating: SMALL chunks of
 * SMALL_SIZE bytes and MEDIUM chunks of MEDIUM_SIZE bytes are allocated, the
 * SMALL ones are freed again (into the thread's tcache up to its fill count,
 * then a fastbin), and main block 1 (used at diff.a) is freed.  Stop "diff.b".
 *
 * Facts: trim.anon_before, trim.anon_after, trim.drop (bytes), trim.result;
 * mallinfo2.<stop>.<field> at trim, trimmed, diff.a and diff.b;
 * diff.small.N, diff.medium.N (user addresses), diff.freed_block (user
 * address of main block 1), small_size, medium_size, block, blocks.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define BLOCKS 64
#define BLOCK 20000
#define SMALL 9
#define SMALL_SIZE 72
#define MEDIUM 3
#define MEDIUM_SIZE 2000

static char *main_blocks[BLOCKS];

static void fill_and_free_half(char **blocks)
{
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK);
        demo_check(blocks[i] != NULL, "malloc");
        memset(blocks[i], 0x5a, BLOCK);
    }
    for (int i = 0; i < BLOCKS; i += 2)
        free(blocks[i]);
}

static void *thread_main(void *unused)
{
    static char *blocks[BLOCKS];
    (void)unused;
    fill_and_free_half(blocks);
    return NULL;
}

/* "Anonymous:" of /proc/self/smaps_rollup, in bytes. */
static long anonymous_bytes(void)
{
    char buf[4096];
    int fd = open("/proc/self/smaps_rollup", O_RDONLY);
    demo_check(fd >= 0, "open /proc/self/smaps_rollup");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    demo_check(n > 0, "read /proc/self/smaps_rollup");
    buf[n] = 0;
    char *p = strstr(buf, "\nAnonymous:");
    demo_check(p != NULL, "Anonymous: in smaps_rollup");
    return strtol(p + strlen("\nAnonymous:"), NULL, 10) * 1024;
}

static void fact_mallinfo2(const char *stop)
{
    struct mallinfo2 m = mallinfo2();
    fact("mallinfo2.%s.arena=%zu", stop, m.arena);
    fact("mallinfo2.%s.ordblks=%zu", stop, m.ordblks);
    fact("mallinfo2.%s.smblks=%zu", stop, m.smblks);
    fact("mallinfo2.%s.hblkhd=%zu", stop, m.hblkhd);
    fact("mallinfo2.%s.fsmblks=%zu", stop, m.fsmblks);
    fact("mallinfo2.%s.uordblks=%zu", stop, m.uordblks);
    fact("mallinfo2.%s.fordblks=%zu", stop, m.fordblks);
    fact("mallinfo2.%s.keepcost=%zu", stop, m.keepcost);
}

int main(void)
{
    static char *small[SMALL], *medium[MEDIUM];
    pthread_t t;

    demo_check(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "prctl(PR_SET_THP_DISABLE)");
    demo_fact_pid();
    fact("block=%d", BLOCK);
    fact("blocks=%d", BLOCKS);
    fact("small_size=%d", SMALL_SIZE);
    fact("medium_size=%d", MEDIUM_SIZE);

    /* glibc 2.43+ makes a thread's tcache on its first free: before the diff stops */
    free(malloc(24));
    for (int i = 0; i < BLOCKS; i++) {
        main_blocks[i] = malloc(BLOCK);
        demo_check(main_blocks[i] != NULL, "malloc");
        memset(main_blocks[i], 0x5a, BLOCK);
    }

    fact_mallinfo2("diff.a");
    demo_stop("diff.a");
    for (int i = 0; i < SMALL; i++)
        small[i] = malloc(SMALL_SIZE);
    for (int i = 0; i < MEDIUM; i++)
        medium[i] = malloc(MEDIUM_SIZE);
    for (int i = 0; i < SMALL; i++)
        free(small[i]);
    free(main_blocks[1]);
    for (int i = 0; i < SMALL; i++)
        fact("diff.small.%d=%p", i, (void *)small[i]);
    for (int i = 0; i < MEDIUM; i++)
        fact("diff.medium.%d=%p", i, (void *)medium[i]);
    fact("diff.freed_block=%p", (void *)main_blocks[1]);
    fact_mallinfo2("diff.b");
    demo_stop("diff.b");

    for (int i = 0; i < BLOCKS; i += 2)
        free(main_blocks[i]);
    demo_check(pthread_create(&t, NULL, thread_main, NULL) == 0, "pthread_create");
    demo_check(pthread_join(t, NULL) == 0, "pthread_join");

    fact_mallinfo2("trim");
    demo_stop("trim");
    long before = anonymous_bytes();
    int result = malloc_trim(0);
    long after = anonymous_bytes();
    fact("trim.anon_before=%ld", before);
    fact("trim.anon_after=%ld", after);
    fact("trim.drop=%ld", before - after);
    fact("trim.result=%d", result);
    fact_mallinfo2("trimmed");
    demo_stop("trimmed");
    demo_done();
    return 0;
}
