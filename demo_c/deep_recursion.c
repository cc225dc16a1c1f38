/*
 * deep_recursion DEPTH [overflow] - experiment: a deep thread stack.
 *
 * A thread with a 1 MiB stack recurses DEPTH times (default 100) through
 * a function with a 1024-byte local buffer, then stops at "bottom".  With
 * "overflow" it recurses without bound and dies of SIGSEGV in the guard
 * page (so that run does not exit 0 and prints no GDBEXT_DONE).
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <string.h>

#define FRAME 1024
#define STACK (1024 * 1024)

static long max_depth; /* < 0: no bound */
static unsigned long buf_at[2];

__attribute__((noinline)) static long recurse(long depth)
{
    volatile char buf[FRAME];

    buf[0] = (char)depth; /* touch both ends of the frame */
    buf[FRAME - 1] = (char)depth;
    if (depth < 2)
        buf_at[depth] = (unsigned long)buf;
    if (depth == 1) {
        fact("frame_size=%ld", (long)(buf_at[0] - buf_at[1]));
        fact("top.local=0x%lx", buf_at[0]);
    }
    if (max_depth >= 0 && depth == max_depth) {
        fact("bottom.local=0x%lx", (unsigned long)buf);
        demo_stop("bottom");
        return buf[0];
    }
    return recurse(depth + 1) + buf[FRAME - 1];
}

static void *thread_main(void *arg)
{
    pthread_attr_t attr;
    void *addr;
    size_t size, guard;

    (void)arg;
    demo_check(pthread_getattr_np(pthread_self(), &attr) == 0, "getattr");
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_getguardsize(&attr, &guard);
    pthread_attr_destroy(&attr);

    fact("thread.tid=%d", (int)demo_gettid());
    fact("thread.stack_addr=0x%lx", (unsigned long)addr);
    fact("thread.stack_size=%zu", size);
    fact("thread.guard_size=%zu", guard);
    fact("depth=%ld", max_depth); /* -1 with overflow */
    fact("overflow=%d", max_depth < 0);
    return (void *)recurse(0);
}

int main(int argc, char **argv)
{
    pthread_t th;
    pthread_attr_t attr;

    max_depth = demo_arg_long(argc > 1 ? argv[1] : NULL, 100);
    demo_check(max_depth >= 1, "DEPTH must be >= 1");
    if (argc > 2) {
        demo_check(strcmp(argv[2], "overflow") == 0,
                   "usage: deep_recursion DEPTH [overflow]");
        max_depth = -1;
    }

    demo_fact_pid();
    fact("main.tid=%d", (int)demo_gettid());
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK);
    demo_check(pthread_create(&th, &attr, thread_main, NULL) == 0,
               "pthread_create");
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
    demo_done();
    return 0;
}
