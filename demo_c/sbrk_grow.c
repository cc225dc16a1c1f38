/*
 * sbrk_grow - experiment: moving the program break, for brk watching.
 *
 *   sbrk_grow [grow]     sbrk(+100 MiB) then sbrk(-100 MiB), stops
 *                        "before", "after", "shrunk"
 *   sbrk_grow steps [N]  N sbrk(4096) calls (default 1000) then one shrink
 *                        back; stop "steps_done"
 *   sbrk_grow brk_raw    the raw brk syscall: +1 MiB then back; stop "raw"
 *
 * Every break value the program itself sets is reported, in order, as
 * brk.event.K.  The program never calls malloc, so no other brk happens.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MiB (1024UL * 1024UL)

static int nevents;

static void event(unsigned long brk)
{
    fact("brk.event.%d=0x%lx", nevents++, brk);
}

static unsigned long cur_brk(void)
{
    return (unsigned long)sbrk(0);
}

/* sbrk(incr) and report the new break. */
static void move(long incr)
{
    void *old = sbrk(incr);
    demo_check(old != (void *)-1, "sbrk");
    event((unsigned long)old + incr);
}

static void mode_grow(void)
{
    fact("brk.before=0x%lx", cur_brk());
    demo_stop("before");
    move(100 * MiB);
    fact("brk.after=0x%lx", cur_brk());
    demo_stop("after");
    move(-(long)(100 * MiB));
    fact("brk.shrunk=0x%lx", cur_brk());
    demo_stop("shrunk");
}

static void mode_steps(long n)
{
    unsigned long start = cur_brk();

    fact("brk.before=0x%lx", start);
    fact("steps=%ld", n);
    /* Nothing is printed inside the loop: the loop is the measurement. */
    for (long i = 0; i < n; i++)
        demo_check(sbrk(4096) != (void *)-1, "sbrk step");
    unsigned long final = cur_brk();
    demo_check(final == start + (unsigned long)n * 4096, "step arithmetic");

    for (long i = 0; i < n; i++)
        event(start + (unsigned long)(i + 1) * 4096);
    fact("brk.final=0x%lx", final);

    move(-(long)(n * 4096));
    fact("brk.shrunk=0x%lx", cur_brk());
    demo_stop("steps_done");
}

static void mode_brk_raw(void)
{
    unsigned long before = (unsigned long)syscall(SYS_brk, 0);
    fact("brk.raw_before=0x%lx", before);

    unsigned long after = (unsigned long)syscall(SYS_brk, before + MiB);
    demo_check(after == before + MiB, "raw brk grow");
    event(after);
    fact("brk.raw_after=0x%lx", after);
    demo_stop("raw");

    unsigned long shrunk = (unsigned long)syscall(SYS_brk, before);
    demo_check(shrunk == before, "raw brk shrink");
    event(shrunk);
    fact("brk.raw_shrunk=0x%lx", shrunk);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "grow";

    demo_fact_pid();
    demo_fact_globals();

    if (strcmp(mode, "grow") == 0)
        mode_grow();
    else if (strcmp(mode, "steps") == 0)
        mode_steps(demo_arg_long(argc > 2 ? argv[2] : NULL, 1000));
    else if (strcmp(mode, "brk_raw") == 0)
        mode_brk_raw();
    else
        demo_check(0, "usage: sbrk_grow [grow | steps [N] | brk_raw]");

    demo_done();
    return 0;
}
