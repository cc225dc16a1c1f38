/*
 * demo.c - implementation of the shared helpers declared in demo.h
 * (fact printing with write(2), the gdbext_stop breakpoint target, and
 * the section-placement globals reported by several programs).
 */
#define _GNU_SOURCE
#include "demo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One object per section, so the tests can check region classification. */
int data_global = 0x1234;                       /* .data   */
int bss_global;                                 /* .bss    */
const char *rodata_string = "gdbext rodata string"; /* literal in .rodata */

__attribute__((noinline, used)) void gdbext_stop(const char *label)
{
    /* The compiler may not drop or merge this call. */
    asm volatile("" : : "r"(label) : "memory");
}

void demo_write(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(1, buf, len);
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void demo_puts(const char *s)
{
    demo_write(s, strlen(s));
}

void fact(const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "GDBEXT_FACT ");
    va_list ap;

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    demo_write(line, (size_t)n);
}

void demo_stop(const char *label)
{
    char line[128];
    int n = snprintf(line, sizeof line, "GDBEXT_STOP %s\n", label);

    demo_write(line, (size_t)n);
    gdbext_stop(label);
}

void demo_done(void)
{
    demo_puts("GDBEXT_DONE\n");
}

pid_t demo_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

void demo_fact_pid(void)
{
    fact("pid=%d", (int)getpid());
}

extern int main(int argc, char **argv);

void demo_fact_globals(void)
{
    fact("data_global=0x%lx", (unsigned long)&data_global);
    fact("bss_global=0x%lx", (unsigned long)&bss_global);
    fact("rodata_string=0x%lx", (unsigned long)rodata_string);
    fact("code_function=0x%lx", (unsigned long)&main);
}

void demo_check(int cond, const char *what)
{
    if (cond)
        return;
    const char *pre = "demo check failed: ";
    if (write(2, pre, strlen(pre)) < 0 || write(2, what, strlen(what)) < 0 ||
        write(2, "\n", 1) < 0) {
        /* nothing more we can do */
    }
    _exit(2);
}

long demo_arg_long(const char *s, long dflt)
{
    if (s == NULL)
        return dflt;
    char *end;
    long v = strtol(s, &end, 0);
    demo_check(*s != '\0' && *end == '\0', "numeric argument");
    return v;
}
