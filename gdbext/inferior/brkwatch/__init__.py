"""brkwatch's edge: hooks that see every change of the program break (and, on request, every
anonymous mmap/munmap/mremap) and record it without stopping the program.

Three ways to be told, chosen by measurement (benchmarks/brkwatch_overhead.py):
  watch    a hardware watchpoint on libc's own `__curbrk` (one stop per change of the break),
           a breakpoint on __brk's failure branch (a refused brk leaves __curbrk as it was)
  break    a breakpoint after the system call in libc's __brk (one stop, with step-over)
  syscall  `catch syscall` (two stops per call, and every other system call of the program
           stops too while a syscall catchpoint exists)
watch and break add breakpoints around the system call in libc's syscall() (a raw
syscall(SYS_brk, ...) changes the break without touching __curbrk) and, with --mmap, after the
system call in mmap, munmap and mremap.  Every hook is an internal breakpoint whose stop()
records and returns False, so gdb resumes at once and a `next` in progress goes on.

The hooks never write to the inferior (gdb's own breakpoint insertion aside) and never call
functions in it.  Breakpoints sit at libc addresses of one process: they are removed when libc
goes away (exit, kill, a new run) and set again when libc is loaded.

One job per module:
  watcher.py     the state machine, per gdb inferior: arming, gdb's events, one event per stop
  hooks.py       the internal breakpoints and watchpoint that hand a stop to the watcher
  catchpoint.py  the `catch syscall` catchpoint and its condition function
  libccode.py    libc's symbols and the instructions to hook (system calls, __brk's failure)
  running.py     the process, registers, memory, heap start and mappings, read uncached
  callers.py     which frame of the program, and which malloc call, caused an event
  threshold.py   where mp_.mmap_threshold is
The options are model/brkoptions.py, the log model/brklog.py, what a finished mmap, munmap
or mremap means model/brksyscalls.py, and the words and documents views/brkwatch.py.
"""

from ...model.brkoptions import Options
from .watcher import WATCHER, Watcher

__all__ = ["Options", "WATCHER", "Watcher"]
