/*
 * brk_exec_fork - experiment: the program break across exec and fork, for
 * brkwatch.
 *
 *   brk_exec_fork exec   sbrk(+1 MiB), stop "before_exec", then execs itself
 *                        as `brk_exec_fork execd`: a new image with a new libc
 *                        and a new heap, which does sbrk(+2 MiB), sbrk(-1 MiB),
 *                        stop "after_exec"
 *   brk_exec_fork fork   sbrk(+1 MiB), stop "before_fork", fork(); the child
 *                        does sbrk(+3 MiB), stop "child", exits 0; the parent
 *                        does sbrk(+2 MiB), stop "parent", then waits for the
 *                        child
 *
 * Facts: exec: brk.first.{before,after}; after the exec: pid (the same
 * process), brk.second.{before,after,shrunk}.  fork: brk.parent.{before,
 * after,after_fork}, child.pid, brk.child.{before,after}.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024L * 1024)

static unsigned long cur_brk(void)
{
    return (unsigned long)sbrk(0);
}

/* sbrk(incr) and report the break before and after as prefix.{before,after}. */
static void move(const char *prefix, const char *after, long incr)
{
    demo_check(sbrk(incr) != (void *)-1, "sbrk");
    fact("%s.%s=0x%lx", prefix, after, cur_brk());
}

static void mode_exec(const char *self)
{
    fact("brk.first.before=0x%lx", cur_brk());
    move("brk.first", "after", MiB);
    demo_stop("before_exec");
    execl("/proc/self/exe", self, "execd", (char *)NULL);
    demo_check(0, "exec");
}

static void mode_execd(void)
{
    fact("brk.second.before=0x%lx", cur_brk());
    move("brk.second", "after", 2 * MiB);
    move("brk.second", "shrunk", -MiB);
    demo_stop("after_exec");
}

static void mode_fork(void)
{
    fact("brk.parent.before=0x%lx", cur_brk());
    move("brk.parent", "after", MiB);
    demo_stop("before_fork");
    pid_t child = fork();
    demo_check(child >= 0, "fork");
    if (child == 0) {
        fact("child.pid=%d", (int)getpid());
        fact("brk.child.before=0x%lx", cur_brk());
        move("brk.child", "after", 3 * MiB);
        demo_stop("child");
        _exit(0);
    }
    move("brk.parent", "after_fork", 2 * MiB);
    demo_stop("parent");
    int status = 0;
    demo_check(waitpid(child, &status, 0) == child, "waitpid");
    demo_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exec";

    demo_fact_pid();
    if (strcmp(mode, "exec") == 0)
        mode_exec(argv[0]);
    else if (strcmp(mode, "execd") == 0)
        mode_execd();
    else if (strcmp(mode, "fork") == 0)
        mode_fork();
    else
        demo_check(0, "usage: brk_exec_fork [exec | fork]");
    demo_done();
    return 0;
}
