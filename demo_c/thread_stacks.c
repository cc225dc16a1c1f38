/*
 * thread_stacks - experiment: where do thread stacks live?
 *
 * The main thread and three threads (T1 default attributes, T2 a
 * non-default stack size, T3 a 64 KiB guard) each report their TID, the
 * address of a local variable and what pthread_getattr_np says about their
 * stack.  Globals in .data/.bss/.rodata/.text and a malloc'd block are
 * reported too.  All threads stay alive through the stop "threads".
 *
 * "thread_stacks wide-name" names T1 with four CJK characters (12 bytes of
 * UTF-8, which the kernel keeps whole) before the stop, for the tests of
 * tables with double-width names; fact thread.1.name says what was set.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 3

static pthread_barrier_t ready;   /* threads have printed their facts */
static pthread_barrier_t release; /* main has passed its stop */

static void fact_stack(const char *prefix, pthread_t th, int with_guard)
{
    pthread_attr_t attr;
    void *addr;
    size_t size, guard;

    demo_check(pthread_getattr_np(th, &attr) == 0, "pthread_getattr_np");
    demo_check(pthread_attr_getstack(&attr, &addr, &size) == 0, "getstack");
    demo_check(pthread_attr_getguardsize(&attr, &guard) == 0, "getguardsize");
    pthread_attr_destroy(&attr);

    fact("%s.stack_addr=0x%lx", prefix, (unsigned long)addr);
    fact("%s.stack_size=%zu", prefix, size);
    if (with_guard)
        fact("%s.guard_size=%zu", prefix, guard);
}

static void *thread_main(void *arg)
{
    int n = (int)(long)arg;
    int local = n;
    char prefix[32];

    snprintf(prefix, sizeof prefix, "thread.%d", n);
    fact("%s.tid=%d", prefix, (int)demo_gettid());
    fact("%s.local=0x%lx", prefix, (unsigned long)&local);
    fact_stack(prefix, pthread_self(), 1);

    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release);
    return (void *)(long)local;
}

int main(int argc, char **argv)
{
    int local = 0;
    pthread_t th[NTHREADS];
    pthread_attr_t attr[NTHREADS];

    demo_fact_pid();
    demo_fact_globals();

    void *block = malloc(64);
    demo_check(block != NULL, "malloc");
    fact("malloc_block=0x%lx", (unsigned long)block);

    fact("main.tid=%d", (int)demo_gettid());
    fact("main.local=0x%lx", (unsigned long)&local);
    fact_stack("main", pthread_self(), 0);

    pthread_barrier_init(&ready, NULL, NTHREADS + 1);
    pthread_barrier_init(&release, NULL, NTHREADS + 1);

    for (int i = 0; i < NTHREADS; i++)
        pthread_attr_init(&attr[i]);
    /* T1: defaults.  T2: non-default stack size.  T3: 64 KiB guard. */
    pthread_attr_setstacksize(&attr[1], 256 * 1024 + 4096 * 3);
    pthread_attr_setguardsize(&attr[2], 64 * 1024);

    for (int i = 0; i < NTHREADS; i++)
        demo_check(pthread_create(&th[i], &attr[i], thread_main,
                                  (void *)(long)(i + 1)) == 0,
                   "pthread_create");

    pthread_barrier_wait(&ready);
    if (argc > 1 && strcmp(argv[1], "wide-name") == 0) {
        static const char wide[] = "\345\267\245\344\275\234\347\272\277\347\250\213";
        demo_check(pthread_setname_np(th[0], wide) == 0, "pthread_setname_np");
        fact("thread.1.name=%s", wide);
    }
    demo_stop("threads");
    pthread_barrier_wait(&release);

    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        pthread_attr_destroy(&attr[i]);
    }
    free(block);
    demo_done();
    return 0;
}
