/*
 * escape_names - names from the inferior that hold terminal control bytes.
 *
 * A thread named "\x1b]0;pwned\x07" (an OSC sequence that sets a terminal's
 * title) and a file mapping whose name holds ESC, a colour sequence, BEL,
 * a tab and a newline.  Stop "named"; then the file is removed.  The facts
 * give both names with every byte below 0x20 or 0x7f written as \xHH.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char THREAD_NAME[] = "\x1b]0;pwned\x07";
static const char FILE_NAME[] = "gdbext_\x1b[31mred\x1b[0m\x07\tx\ny";

static pthread_barrier_t ready, release;

static void *named_thread(void *arg)
{
    (void)arg;
    fact("thread.tid=%d", (int)demo_gettid());
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&release);
    return NULL;
}

/* `s` with control bytes as \xHH, so the fact stays one clean line. */
static void escaped(char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; *s && n + 5 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            n += (size_t)snprintf(out + n, size - n, "\\x%02x", c);
        else
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

int main(void)
{
    demo_fact_pid();
    char path[256], text[512];
    snprintf(path, sizeof path, "/tmp/%s.%d", FILE_NAME, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    demo_check(fd >= 0, "create the file");
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    demo_check(ftruncate(fd, (off_t)page) == 0, "ftruncate");
    char *file = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
    demo_check(file != MAP_FAILED, "mmap the file");
    close(fd);

    pthread_t th;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_barrier_init(&release, NULL, 2);
    demo_check(pthread_create(&th, NULL, named_thread, NULL) == 0, "pthread_create");
    demo_check(pthread_setname_np(th, THREAD_NAME) == 0, "pthread_setname_np");
    pthread_barrier_wait(&ready);

    fact("file.addr=0x%lx", (unsigned long)file);
    escaped(text, sizeof text, path);
    fact("file.path=%s", text);
    escaped(text, sizeof text, THREAD_NAME);
    fact("thread.name=%s", text);
    demo_stop("named");

    pthread_barrier_wait(&release);
    pthread_join(th, NULL);
    munmap(file, page);
    unlink(path);
    demo_done();
    return 0;
}
