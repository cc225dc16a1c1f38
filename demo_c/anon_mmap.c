/*
 * anon_mmap - experiment: anonymous and file-backed mappings in vmmap.
 *
 * Maps 13*1023 bytes anonymous (the kernel rounds to whole pages) and a
 * 3-page temp file shared read-only; stop "mapped".  Then unmaps both,
 * removes the file; stop "unmapped".
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
    demo_fact_pid();

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t anon_len = 13 * 1023;
    size_t anon_mapped = (anon_len + page - 1) / page * page;

    char *anon = mmap(NULL, anon_len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    demo_check(anon != MAP_FAILED, "anonymous mmap");
    memset(anon, 0xa5, anon_len); /* touch every page */

    char path[] = "/tmp/gdbext_demo_XXXXXX";
    int fd = mkstemp(path);
    demo_check(fd >= 0, "mkstemp");
    size_t file_len = 3 * page;
    char chunk[256];
    memset(chunk, 'g', sizeof chunk);
    for (size_t done = 0; done < file_len; done += sizeof chunk)
        demo_check(write(fd, chunk, sizeof chunk) == sizeof chunk, "write");

    char *file = mmap(NULL, file_len, PROT_READ, MAP_SHARED, fd, 0);
    demo_check(file != MAP_FAILED, "file mmap");
    close(fd);
    volatile char sink = 0;
    for (size_t off = 0; off < file_len; off += page)
        sink += file[off]; /* fault every page in */
    (void)sink;

    fact("anon.addr=0x%lx", (unsigned long)anon);
    fact("anon.len=%zu", anon_len);
    fact("anon.mapped_len=%zu", anon_mapped);
    fact("file.addr=0x%lx", (unsigned long)file);
    fact("file.len=%zu", file_len);
    fact("file.path=%s", path);
    demo_stop("mapped");

    demo_check(munmap(anon, anon_len) == 0, "munmap anon");
    demo_check(munmap(file, file_len) == 0, "munmap file");
    unlink(path);
    demo_stop("unmapped");

    demo_done();
    return 0;
}
