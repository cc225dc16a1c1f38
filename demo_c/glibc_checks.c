/*
 * glibc_checks MODE [COUNT] - states glibc malloc aborts on, and forged free lists.
 *
 * Builds a small heap, puts it in a state that glibc's own checks reject (or
 * that would make it crash), reports what it did and where, stops at "checks"
 * and leaves with _exit(0) without calling malloc or free again.
 *
 *   top_small     main top chunk's size = 0x21 (its end no longer the break)
 *   top_zero      main top chunk's size field = 0
 *   top_null      main_arena.top = NULL (system_mem stays what it was)
 *   system_mem    main_arena.system_mem = 0
 *   mmapped_bit   IS_MMAPPED set on a live chunk of the brk heap
 *   nextsize      a large bin of three sizes; its first chunk's fd_nextsize =
 *                 0x4141414141414140
 *   forged COUNT  the fastbin of 0x20 chunks goes on, from a real freed
 *                 chunk, through COUNT (default 3000000) well-formed fake
 *                 chunks laid out inside one big used chunk of the brk heap,
 *                 and the tcache list of 0x20 chunks through min(COUNT,
 *                 100000) more (glibc's counts stop at 65535); the chunks
 *                 freed first fill the tcache (7 before glibc 2.43, 16
 *                 from it: counted, not assumed), and glibc 2.43 and later,
 *                 which have no fastbins, get the tcache list only
 *
 * main_arena is found without symbols: the one word in libc's writable data
 * that holds the top chunk's address is main_arena.top; system_mem is the
 * first word after it equal to mallinfo2().arena.
 *
 * Facts: corrupt.chunk / corrupt.field / corrupt.value / corrupt.original
 * (the word changed), top, top.size (before), sbrk0, system_mem (before),
 * arena.top_field, live.K (user pointers of live chunks), large.K (the large
 * bin's chunks, nextsize), forged.{count,tcache_count,base,fast_head,tcache_tail,
 * fast_first,tcache_first}, forged.fast (1 when a fastbin was forged),
 * forged.tcache_fill (the chunks the tcache took).
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__GNUC__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

#include "heap_demo.h"

static uintptr_t *size_field(void *chunk)
{
    return (uintptr_t *)chunk + 1;
}

static void change(void *chunk, const char *field, uintptr_t *where, uintptr_t value)
{
    fact("corrupt.chunk=0x%lx", (unsigned long)chunk);
    fact("corrupt.field=%s", field);
    fact("corrupt.address=0x%lx", (unsigned long)where);
    fact("corrupt.original=0x%lx", (unsigned long)*where);
    fact("corrupt.value=0x%lx", (unsigned long)value);
    *where = value;
}

/* The top chunk right after a fresh allocation made from it. */
static char *top_after(char *user)
{
    char *chunk = user - 16;
    return chunk + (*size_field(chunk) & ~(uintptr_t)7);
}

static char *small_heap(void)
{
    live(0x18);
    live(0x28);
    char *last = live(0x38);
    char *top = top_after(last);
    demo_check((uintptr_t)top < (uintptr_t)sbrk(0), "top below break");
    fact("top=0x%lx", (unsigned long)top);
    fact("top.size=0x%lx", (unsigned long)*size_field(top));
    fact("sbrk0=0x%lx", (unsigned long)sbrk(0));
    return top;
}

/* Parse one hexadecimal number at *s, advancing it. */
static uintptr_t hex(const char **s)
{
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else
            return v;
    }
}

/* The address of main_arena.top: the one word in libc's writable file mappings
 * equal to the top chunk's address. Reads /proc/self/maps without malloc. */
static uintptr_t *find_arena_top(char *top)
{
    static char maps[1 << 16];
    int fd = open("/proc/self/maps", O_RDONLY);
    demo_check(fd >= 0, "open /proc/self/maps");
    size_t n = 0;
    ssize_t got;
    while (n < sizeof maps - 1 && (got = read(fd, maps + n, sizeof maps - 1 - n)) > 0)
        n += (size_t)got;
    close(fd);
    maps[n] = 0;
    uintptr_t *found = NULL;
    int hits = 0;
    for (const char *line = maps; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
        const char *s = line;
        uintptr_t lo = hex(&s);
        s++;
        uintptr_t hi = hex(&s);
        const char *eol = strchr(line, '\n');
        const char *libc = strstr(line, "libc");
        if (s[1] != 'r' || s[2] != 'w' || !libc || (eol && libc > eol))
            continue;
        for (uintptr_t *w = (uintptr_t *)lo; w < (uintptr_t *)hi; w++)
            if (*w == (uintptr_t)top) {
                found = w;
                hits++;
            }
    }
    demo_check(hits == 1, "exactly one word in libc's data holds the top chunk's address");
    fact("arena.top_field=0x%lx", (unsigned long)found);
    return found;
}

static void mode_top_size(uintptr_t value)
{
    char *top = small_heap();
    change(top, "size", size_field(top), value);
}

static void mode_top_null(void)
{
    char *top = small_heap();
    uintptr_t *field = find_arena_top(top);
    change(top, "main_arena.top", field, 0);
}

static void mode_system_mem(void)
{
    char *top = small_heap();
    uintptr_t *field = find_arena_top(top);
    struct mallinfo2 mi = mallinfo2();
    fact("system_mem=0x%lx", (unsigned long)mi.arena);
    uintptr_t *w = field + 1;
    while (*w != mi.arena && w < field + 0x200)
        w++;
    demo_check(*w == mi.arena, "system_mem found after main_arena.top");
    change(top, "main_arena.system_mem", w, 0);
}

static void mode_mmapped_bit(void)
{
    live(0x18);
    char *victim = live(0x48);
    live(0x18);
    small_heap();
    char *chunk = victim - 16;
    change(chunk, "size", size_field(chunk), *size_field(chunk) | 2);
}

static void mode_nextsize(void)
{
    /* Sizes 0x470, 0x460, 0x460, 0x450: one large bin (65 on x86-64), three sizes. */
    static const size_t req[] = {0x468, 0x458, 0x458, 0x448};
    char *p[4];
    live(0x18);
    for (int i = 0; i < 4; i++) {
        p[i] = malloc(req[i]);
        live(0x18); /* keeps them apart */
    }
    for (int i = 0; i < 4; i++)
        free(p[i]);                 /* above tcache and fastbins: to the unsorted bin */
    live(0x800);                    /* from top; sorts the unsorted bin into the large bin */
    for (int i = 0; i < 4; i++) {
        uintptr_t *c = (uintptr_t *)(p[i] - 16);
        fact("large.%d=0x%lx", i, (unsigned long)c);
        fact("large.%d.fd_nextsize=0x%lx", i, (unsigned long)c[4]);
    }
    char *head = p[0] - 16; /* the largest: first in the bin, the ring's first */
    change(head, "fd_nextsize", (uintptr_t *)head + 4, 0x4141414141414140UL);
}

static void mode_forged(long count)
{
    enum { MAXFILL = 64, FAKE = 0x20, TCACHE_FAKES = 100000 };
    char *t[MAXFILL];
    demo_check(mallopt(M_MMAP_MAX, 0) == 1, "mallopt"); /* the big chunk from the brk heap */
    live(0x18);
    for (int i = 0; i < MAXFILL; i++)
        t[i] = malloc(0x18);
    live(0x18);
    long tcount = count < TCACHE_FAKES ? count : TCACHE_FAKES;
    char *big = live((size_t)(count + tcount + 2) * FAKE);
    /* Free until a free raises mallinfo2's free bytes: those before it went to the tcache
     * (tcache[0]: t[fill-1] -> ... -> t0; the first lowers them when it makes the tcache, from
     * glibc 2.43); that one went to fastbin[0] if it raised smblks (glibc < 2.43), else to the
     * unsorted bin; nothing is allocated after. */
    int fill = 0;
    char *f = NULL;
    while (fill < MAXFILL) {
        struct mallinfo2 a = mallinfo2();
        free(t[fill]);
        struct mallinfo2 b = mallinfo2();
        if (b.fordblks <= a.fordblks) {
            fill++;
            continue;
        }
        if (b.smblks > a.smblks)
            f = t[fill];
        break;
    }
    demo_check(fill > 0 && fill < MAXFILL, "the tcache took some chunks, not all");
    see_safe_linking(t[0]);
    fact("forged.tcache_fill=%d", fill);
    fact("forged.fast=%d", f != NULL);

    /* Fake 0x20 chunks one after the other, each linking to the next: the first
     * `count` for the fastbin (chunk addresses), the next `count` for the tcache
     * (user addresses, with t0's key). */
    char *fast = (char *)(((uintptr_t)big + 15) & ~(uintptr_t)15);
    char *tc = fast + (size_t)count * FAKE;
    uintptr_t key = ((uintptr_t *)t[0])[1];
    for (long k = 0; f && k < count; k++) {
        uintptr_t *c = (uintptr_t *)(fast + k * FAKE);
        c[0] = 0;
        c[1] = FAKE | 1;
        c[2] = k + 1 < count ? PROTECT_PTR(&c[2], fast + (k + 1) * FAKE) : PROTECT_PTR(&c[2], 0);
    }
    for (long k = 0; k < tcount; k++) {
        uintptr_t *c = (uintptr_t *)(tc + k * FAKE);
        c[0] = 0;
        c[1] = FAKE | 1;
        c[2] = k + 1 < tcount ? PROTECT_PTR(&c[2], tc + (k + 1) * FAKE + 16)
                              : PROTECT_PTR(&c[2], 0);
        c[3] = key;
    }
    fact("forged.count=%ld", count);
    fact("forged.tcache_count=%ld", tcount);
    fact("forged.base=0x%lx", (unsigned long)fast);
    if (f) {
        fact("forged.fast_head=0x%lx", (unsigned long)(f - 16));
        fact("forged.fast_first=0x%lx", (unsigned long)fast);
        uintptr_t *fd = (uintptr_t *)f;
        *fd = PROTECT_PTR(fd, fast);
    }
    fact("forged.tcache_tail=0x%lx", (unsigned long)(t[0] - 16));
    fact("forged.tcache_first=0x%lx", (unsigned long)tc);
    uintptr_t *next = (uintptr_t *)t[0];
    *next = PROTECT_PTR(next, tc + 16);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";

    demo_fact_pid();
    fact("mode=%s", mode);
    if (strcmp(mode, "top_small") == 0)
        mode_top_size(0x21);
    else if (strcmp(mode, "top_zero") == 0)
        mode_top_size(0);
    else if (strcmp(mode, "top_null") == 0)
        mode_top_null();
    else if (strcmp(mode, "system_mem") == 0)
        mode_system_mem();
    else if (strcmp(mode, "mmapped_bit") == 0)
        mode_mmapped_bit();
    else if (strcmp(mode, "nextsize") == 0)
        mode_nextsize();
    else if (strcmp(mode, "forged") == 0)
        mode_forged(demo_arg_long(argc > 2 ? argv[2] : NULL, 3000000));
    else
        demo_check(0, "usage: glibc_checks top_small|top_zero|top_null|system_mem|"
                      "mmapped_bit|nextsize|forged [COUNT]");

    demo_stop("checks");
    demo_done();
    _exit(0); /* nothing may touch the broken heap */
}
