"""A model of glibc malloc (ptmalloc2) over a Memory: arenas, heaps, chunks, bins."""
