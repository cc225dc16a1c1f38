/*
 * altstack - experiment: threads whose SP is not on a stack glibc allocated.
 *
 * T1 ("alt") installs a 64 KiB alternate signal stack taken from malloc
 * (so it lies in the [heap]) and sends itself SIGUSR1; the handler runs on
 * that stack and stops at "altstack".  T2 ("user") runs on a 256 KiB stack
 * the program mmap'ed itself (pthread_attr_setstack) and waits.  The main
 * thread waits too.
 *
 * Facts: main.tid; alt.{tid,buffer,size,local,stack_addr,stack_size,
 * guard_size} (local = a variable of the handler, on the alternate stack;
 * stack_* = pthread_getattr_np of T1's own stack); user.{tid,buffer,size,
 * local,stack_addr,stack_size,guard_size}.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ALT_SIZE (64 * 1024)
#define USER_SIZE (256 * 1024)

static pthread_barrier_t ready;   /* T2 has printed its facts */
static pthread_barrier_t release; /* T1 has passed its stop */

static void fact_stack(const char *prefix)
{
    pthread_attr_t attr;
    void *addr;
    size_t size, guard;

    demo_check(pthread_getattr_np(pthread_self(), &attr) == 0, "getattr");
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_getguardsize(&attr, &guard);
    pthread_attr_destroy(&attr);
    fact("%s.stack_addr=0x%lx", prefix, (unsigned long)addr);
    fact("%s.stack_size=%zu", prefix, size);
    fact("%s.guard_size=%zu", prefix, guard);
}

static void on_usr1(int sig)
{
    volatile int local = sig;

    fact("alt.local=0x%lx", (unsigned long)&local);
    demo_stop("altstack");
}

static void *alt_main(void *arg)
{
    stack_t ss;
    struct sigaction sa;

    (void)arg;
    fact("alt.tid=%d", (int)demo_gettid());
    fact_stack("alt");
    ss.ss_sp = malloc(ALT_SIZE);
    demo_check(ss.ss_sp != NULL, "malloc");
    ss.ss_size = ALT_SIZE;
    ss.ss_flags = 0;
    demo_check(sigaltstack(&ss, NULL) == 0, "sigaltstack");
    fact("alt.buffer=0x%lx", (unsigned long)ss.ss_sp);
    fact("alt.size=%d", ALT_SIZE);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    demo_check(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    demo_check(pthread_kill(pthread_self(), SIGUSR1) == 0, "pthread_kill");

    pthread_barrier_wait(&release);
    return NULL;
}

static void *user_main(void *arg)
{
    volatile int local = 0;

    (void)arg;
    fact("user.tid=%d", (int)demo_gettid());
    fact("user.local=0x%lx", (unsigned long)&local);
    fact_stack("user");
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release);
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    pthread_attr_t attr;

    demo_fact_pid();
    fact("main.tid=%d", (int)demo_gettid());
    pthread_barrier_init(&ready, NULL, 2);
    pthread_barrier_init(&release, NULL, 3);

    void *buf = mmap(NULL, USER_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    demo_check(buf != MAP_FAILED, "mmap");
    fact("user.buffer=0x%lx", (unsigned long)buf);
    fact("user.size=%d", USER_SIZE);
    pthread_attr_init(&attr);
    demo_check(pthread_attr_setstack(&attr, buf, USER_SIZE) == 0, "setstack");
    demo_check(pthread_create(&t2, &attr, user_main, NULL) == 0, "create user");
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&ready);

    demo_check(pthread_create(&t1, NULL, alt_main, NULL) == 0, "create alt");
    pthread_barrier_wait(&release);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    demo_done();
    return 0;
}
