/* Helpers shared by the demos that damage a heap on purpose (heap_corrupt, glibc_checks).
 * Include after demo.h; <stdint.h> and <stdlib.h> are needed. */
#ifndef HEAP_DEMO_H
#define HEAP_DEMO_H

#include <stdint.h>
#include <stdlib.h>

/* glibc >= 2.32 safe-linking: a list pointer stored at address pos */
static int safe_linking;
#define PROTECT_PTR(pos, ptr) \
    ((uintptr_t)(ptr) ^ (safe_linking ? (uintptr_t)(pos) >> 12 : 0))

/* The first chunk freed into an empty tcache or fastbin list holds its end, NULL: stored as
 * is by glibc < 2.32, as (its address >> 12) by a glibc with safe-linking. */
static void see_safe_linking(void *first_freed)
{
    safe_linking = *(uintptr_t *)first_freed != 0;
    fact("safe_linking=%d", safe_linking);
}

static int nlive;

static void *live(size_t n)
{
    void *p = malloc(n);
    demo_check(p != NULL, "malloc");
    fact("live.%d=0x%lx", nlive++, (unsigned long)p);
    return p;
}

#endif
