/*
 * many_maps - a process with very many mappings and a tiny heap.
 *
 * Maps N pages in one anonymous mapping, then makes every other page
 * read-only, so the kernel keeps N separate mappings (neighbours with
 * different protections cannot merge).  The heap holds 5 small live
 * chunks.  Stop "maps".  N is limited by vm.max_map_count (65530 by
 * default): the program exits with a check failure when mprotect fails.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define NCHUNKS 5

/* Lines of /proc/self/maps, counted with read(2) into a stack buffer. */
static long count_maps(void)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    demo_check(fd >= 0, "open /proc/self/maps");
    char buf[65536];
    long lines = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

int main(int argc, char **argv)
{
    demo_fact_pid();
    long n = demo_arg_long(argc > 1 ? argv[1] : NULL, 1000);
    demo_check(n > 0, "count");

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *area = mmap(NULL, (size_t)n * page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    demo_check(area != MAP_FAILED, "mmap");
    for (long i = 1; i < n; i += 2)
        demo_check(mprotect(area + i * page, page, PROT_READ) == 0,
                   "mprotect (raise vm.max_map_count?)");

    void *chunk[NCHUNKS];
    for (int i = 0; i < NCHUNKS; i++) {
        chunk[i] = malloc(24 + 16 * i);
        demo_check(chunk[i] != NULL, "malloc");
        fact("chunk.%d=0x%lx", i, (unsigned long)chunk[i]);
    }
    fact("area.addr=0x%lx", (unsigned long)area);
    fact("area.pages=%ld", n);
    fact("maps.count=%ld", count_maps());
    demo_stop("maps");

    for (int i = 0; i < NCHUNKS; i++)
        free(chunk[i]);
    munmap(area, (size_t)n * page);
    demo_done();
    return 0;
}
