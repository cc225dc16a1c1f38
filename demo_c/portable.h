/*
 * portable.h - force-included (gcc -include) into every build of the demos
 * (the Makefile's PORTABLE_H): so that they build on a system whose glibc is
 * older than 2.33 (Debian bullseye's 2.31), and so that `make portable`,
 * which compiles them against an older glibc (a sysroot), makes one binary
 * that runs under that glibc and every newer one.
 *
 * It defines _GNU_SOURCE (empty, exactly as the demos do, so their own
 * #define is a harmless identical redefinition) because it is read before
 * their first line, and it supplies mallinfo2() (glibc 2.33) when the
 * headers lack it: the real mallinfo2 when the running glibc has one, else
 * mallinfo()'s int counters widened to size_t (glibc 2.31, 2.32).
 *
 * The reference to mallinfo2 is weak and, since the sysroot's libc has no
 * such symbol, unversioned: ld.so binds it to mallinfo2@GLIBC_2.33 when the
 * running libc defines it (its only version) and leaves it NULL otherwise.
 * Nothing is looked up at run time (dlsym would allocate), so the heap
 * holds exactly what the demo made.  Against glibc >= 2.33 headers this
 * file only defines _GNU_SOURCE.
 */
#ifndef GDBEXT_PORTABLE_H
#define GDBEXT_PORTABLE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <malloc.h>
#include <stddef.h>

/* Not __GLIBC_PREREQ: it is glibc's, and another libc's preprocessor (musl's) would stop at it. */
#if defined(__GLIBC__) && (__GLIBC__ < 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ < 33))
struct mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks,
           uordblks, fordblks, keepcost;
};

extern struct mallinfo2 mallinfo2(void) __attribute__((weak));

static inline struct mallinfo2 gdbext_mallinfo2(void)
{
    if (mallinfo2)
        return mallinfo2();
    struct mallinfo m = mallinfo();
    return (struct mallinfo2){
        .arena = (unsigned)m.arena, .ordblks = (unsigned)m.ordblks,
        .smblks = (unsigned)m.smblks, .hblks = (unsigned)m.hblks,
        .hblkhd = (unsigned)m.hblkhd, .usmblks = (unsigned)m.usmblks,
        .fsmblks = (unsigned)m.fsmblks, .uordblks = (unsigned)m.uordblks,
        .fordblks = (unsigned)m.fordblks, .keepcost = (unsigned)m.keepcost,
    };
}
#define mallinfo2() gdbext_mallinfo2()
#endif

#endif
