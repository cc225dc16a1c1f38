/*
 * demo.h - shared helpers for the gdbext demo programs.
 *
 * Every program reports facts about itself as single lines
 *     GDBEXT_FACT name=value
 * written with write(2) straight to fd 1 (no stdio, no malloc), announces
 * each stop with "GDBEXT_STOP label" and then calls gdbext_stop(label),
 * on which the tests set a breakpoint.  "GDBEXT_DONE" is printed last.
 */
#ifndef GDBEXT_DEMO_H
#define GDBEXT_DEMO_H

#include <stddef.h>
#include <sys/types.h>

/* Tests break here.  Never inlined or optimised away. */
void gdbext_stop(const char *label);

/* Write a whole buffer / NUL-terminated string to fd 1. */
void demo_write(const char *buf, size_t len);
void demo_puts(const char *s);

/* fact("thread.%d.tid=%d", n, tid) prints "GDBEXT_FACT thread.1.tid=123\n".
 * Formats into a stack buffer; does not allocate. */
void fact(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "GDBEXT_STOP label" and call gdbext_stop(label). */
void demo_stop(const char *label);

/* Print "GDBEXT_DONE". */
void demo_done(void);

/* Print the pid fact; every program does this first. */
void demo_fact_pid(void);

/* Print data_global, bss_global, rodata_string, code_function (= main). */
void demo_fact_globals(void);

pid_t demo_gettid(void);

/* Exit with a message on stderr if cond is false (no stdio, no malloc). */
void demo_check(int cond, const char *what);

/* Parse a decimal argument, or return dflt when s is NULL. */
long demo_arg_long(const char *s, long dflt);

#endif
