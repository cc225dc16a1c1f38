/*
 * own_anchors - malloc_anchors.c in a program that defines its own globals
 * named main_arena and mp_, of its own types struct malloc_state and struct
 * malloc_par (an embedded allocator's), which the heap commands must not
 * take for glibc's.  Same modes and facts, plus
 * own.main_arena and own.mp_.
 */
#define OWN_ANCHORS 1
#include "malloc_anchors.c"
