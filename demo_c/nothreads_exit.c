/*
 * nothreads_exit - experiment: the main thread has exited.
 *
 * main starts a thread and calls pthread_exit().  Once the kernel shows
 * the main thread as a zombie (when /proc/PID/maps reads empty and only
 * /proc/PID/task/TID/maps still works), the thread stops at "orphan".
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pid_t pid;

/* State letter of the main thread, from /proc/PID/task/PID/stat. */
static char main_state(void)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return '?';
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return '?';
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return p && p[1] == ' ' ? p[2] : '?';
}

static void *thread_main(void *arg)
{
    int local = 7;
    (void)arg;

    /* Wait (at most ~5 s) for the main thread to be gone. */
    struct timespec ms = { 0, 1000000 };
    int i;
    for (i = 0; i < 5000 && main_state() != 'Z'; i++)
        nanosleep(&ms, NULL);

    fact("main.tid=%d", (int)pid);
    fact("main.exited=%d", main_state() == 'Z');
    fact("thread.tid=%d", (int)demo_gettid());
    fact("thread.local=0x%lx", (unsigned long)&local);
    demo_fact_globals();
    demo_stop("orphan");
    demo_done();
    return NULL; /* the last thread leaving ends the process with 0 */
}

int main(void)
{
    pthread_t th;

    pid = getpid();
    demo_fact_pid();
    demo_check(pthread_create(&th, NULL, thread_main, NULL) == 0,
               "pthread_create");
    pthread_exit(NULL);
}
