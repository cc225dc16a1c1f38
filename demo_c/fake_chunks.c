/*
 * fake_chunks - the oracle for fakechunks and heapvis.
 *
 *   fake_chunks CANDIDATES_FILE
 *
 * Plants two fake chunks in each of three places: static data, main's stack
 * frame and the memory of a heap chunk in use. At offset 0 of each area a
 * chunk of 0x40 (a tcache size; before 2.43 also a fastbin size), whose next
 * chunk has a plausible size; at offset 0x80 a chunk of 0x500 (past the
 * tcache: free puts it in the unsorted bin), followed by two chunks in use.
 * It also frees two chunks of 0x30 into the tcache and, before glibc 2.43,
 * fills the 0x20 tcache bin and frees two more of 0x20 into a fastbin,
 * printing what glibc's next pointers must be. Then it stops at "planted".
 *
 * When continued it reads CANDIDATES_FILE (lines "ADDRESS SIZE MODE", the
 * chunk's address in hex, its size in hex, and tcache, fastbin or unsorted),
 * and for each line forks a child that really frees the chunk's user pointer
 * and mallocs the same size back (fastbin: with that tcache bin full first,
 * so the chunk goes to the fastbin and comes back from it), with glibc's
 * messages on stderr (LIBC_FATAL_STDERR_=1) sent back through a pipe. It
 * prints try.N=accepted when malloc returned the same pointer, else
 * try.N=rejected and try.N.message=glibc's first line (spaces as '_').
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <gnu/libc-version.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SZ sizeof(size_t)
/* malloc aligns user pointers to 16: a chunk starts 2*SZ before a multiple of 16 */
#define LEAD ((16 - 2 * SZ) % 16)
#define AREA (0x600 + LEAD)

static char static_area[AREA] __attribute__((aligned(16)));
static char candidates[1 << 16];

static int glibc_before(int major, int minor)
{
    const char *v = gnu_get_libc_version();
    int a = atoi(v), b = atoi(strchr(v, '.') + 1);
    return a < major || (a == major && b < minor);
}

/* The fake chunks of one area; `where` names them in the facts. */
static void plant(char *area, const char *where)
{
    char *b = area + LEAD;
    memset(area, 0, AREA);
    *(size_t *)(b + SZ) = 0x41;               /* a chunk of 0x40, PREV_INUSE */
    *(size_t *)(b + 0x40 + SZ) = 0x21;        /* its next chunk: a size free accepts */
    *(size_t *)(b + 0x80 + SZ) = 0x501;       /* a chunk of 0x500, PREV_INUSE */
    *(size_t *)(b + 0x580 + SZ) = 0x31;       /* next: 0x30, PREV_INUSE (0x500 is in use) */
    *(size_t *)(b + 0x5b0 + SZ) = 0x21;       /* and the one after: PREV_INUSE (0x30 in use) */
    fact("fake.%s.0x40=%p", where, (void *)b);
    fact("fake.%s.0x500=%p", where, (void *)(b + 0x80));
}

static void try_one(int n, uintptr_t chunk, size_t size, const char *mode)
{
    int fds[2];
    demo_check(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        void *user = (void *)(chunk + 2 * SZ);
        size_t request = size - SZ;
        void *fill[16];
        int nfill = strcmp(mode, "fastbin") == 0 ? 7 : 0; /* tcache_count before 2.43 */
        for (int i = 0; i < nfill; i++)
            fill[i] = malloc(request);
        for (int i = 0; i < nfill; i++)
            free(fill[i]);
        free(user);
        for (int i = 0; i < nfill; i++)
            fill[i] = malloc(request);
        void *back = malloc(request);
        _exit(back == user ? 0 : 3);
    }
    close(fds[1]);
    char msg[256];
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        fact("try.%d=accepted", n);
        return;
    }
    fact("try.%d=rejected", n);
    if (got <= 0) {
        fact("try.%d.message=%s", n, WIFEXITED(status) ? "malloc_returned_another_pointer" : "no_message");
        return;
    }
    msg[got] = 0;
    for (char *c = msg; *c; c++) {
        if (*c == '\n') {
            *c = 0;
            break;
        }
        if (*c == ' ' || (unsigned char)*c < 33 || (unsigned char)*c > 126)
            *c = '_';
    }
    fact("try.%d.message=%s", n, msg);
}

static void try_candidates(const char *path)
{
    int fd = open(path, O_RDONLY);
    demo_check(fd >= 0, "open the candidates file");
    ssize_t n = read(fd, candidates, sizeof candidates - 1);
    close(fd);
    demo_check(n >= 0, "read the candidates file");
    candidates[n] = 0;
    int k = 0;
    for (char *line = candidates; *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = 0;
        char *p = line;
        uintptr_t chunk = strtoul(p, &p, 16);
        size_t size = strtoul(p, &p, 16);
        while (*p == ' ')
            p++;
        if (chunk && size)
            try_one(k++, chunk, size, p);
        if (!end)
            break;
        line = end + 1;
    }
    fact("tried=%d", k);
}

int main(int argc, char **argv)
{
    setenv("LIBC_FATAL_STDERR_", "1", 1); /* glibc's messages on stderr, not the tty */
    demo_fact_pid();
    char stack_area[AREA] __attribute__((aligned(16)));
    char *heap_area = malloc(AREA);
    plant(static_area, "static");
    plant(stack_area, "stack");
    plant(heap_area, "heap");
    fact("heap_area_chunk=%p", (void *)((char *)heap_area - 2 * SZ));

    /* two chunks of 0x30 in the tcache: b's next is a */
    void *a = malloc(0x28), *b = malloc(0x28);
    void *guard = malloc(0x28);
    fact("tcache.a=%p", a);
    fact("tcache.b=%p", b);
    free(a);
    free(b);
    if (glibc_before(2, 43)) {
        /* seven of 0x20 fill their tcache bin, two more go to a fastbin: y's next is x
         * (a fastbin links chunks, not user pointers) */
        void *fill[7], *x, *y, *g2;
        for (int i = 0; i < 7; i++)
            fill[i] = malloc(0x18);
        x = malloc(0x18);
        g2 = malloc(0x18);
        y = malloc(0x18);
        void *g3 = malloc(0x18);
        for (int i = 0; i < 7; i++)
            free(fill[i]);
        fact("fastbin.x=%p", (void *)((char *)x - 2 * SZ));
        fact("fastbin.y=%p", (void *)((char *)y - 2 * SZ));
        free(x);
        free(y);
        (void)g2;
        (void)g3;
    }
    demo_stop("planted");
    if (argc > 1)
        try_candidates(argv[1]);
    demo_stop("tried");
    (void)guard;
    demo_done();
    return 0;
}
