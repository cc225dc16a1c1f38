"""allocwatch's edge: hooks in libc's allocator entry points that record, without stopping the
program, which call site allocated each chunk and which freed it, and stop at a misuse (double
free, free of a pointer malloc never returned, realloc of a freed pointer, use after free of a
watched chunk) as it happens.

  watcher.py  the state machine per gdb inferior: the hooks, the calls in flight, the table
  sites.py    which call site of the program a call came from, looked up once per address
The table and what a call means are model/allocsites.py, the options model/allocoptions.py,
the words and documents views/allocwatch.py.
"""

from .watcher import WATCHER, Watcher

__all__ = ["WATCHER", "Watcher"]
