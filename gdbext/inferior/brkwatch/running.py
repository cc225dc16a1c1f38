"""What brkwatch's hooks read of the process while it runs: which process and architecture,
registers, words of memory, the start of its heap and its mappings.  Nothing here is cached:
a hook lets the program go on without a stop event, so gdb's per-stop caches would answer
with what was true events ago."""

from typing import List, Optional

import gdb

from ...model.memory import MemoryReadError
from ...model.regions import Mapping
from ..mappings import live_proc_maps
from ..memory import GdbMemory
from ..process import connection_type
from ..brk import proc_start_brk

ARGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")  # x86-64 system call arguments


def is_x86_64() -> bool:
    try:
        return gdb.selected_inferior().architecture().name() == "i386:x86-64"
    except (gdb.error, RuntimeError, AttributeError):
        return False


def live_pid() -> Optional[int]:
    """The selected inferior's process id when it is a running process (not a core), else None."""
    try:
        inf = gdb.selected_inferior()
    except (gdb.error, RuntimeError):
        return None
    if inf.pid == 0:
        return None
    if connection_type(inf) == "core":
        return None
    return inf.pid


def selected_inferior_num() -> int:
    try:
        return gdb.selected_inferior().num
    except (gdb.error, RuntimeError):
        return 1


def is_selected_progspace(progspace) -> bool:
    try:
        return progspace is None or progspace == gdb.selected_inferior().progspace
    except (gdb.error, RuntimeError, AttributeError):
        return True


def registers(frame, names) -> List[int]:
    """The named registers of the frame as unsigned 64-bit values."""
    return [int(frame.read_register(n)) & 0xFFFFFFFFFFFFFFFF for n in names]


def uncached_memory() -> GdbMemory:
    """The selected inferior's memory, read straight from it."""
    return GdbMemory(cache=False)


def read_memory(address: int, size: int) -> Optional[bytes]:
    try:
        return uncached_memory().read(address, size)
    except MemoryReadError:
        return None


def read_u64(address: int) -> Optional[int]:
    data = read_memory(address, 8)
    return int.from_bytes(data, "little") if data is not None else None


def proc_maps(pid: int) -> List[Mapping]:
    """The process's mappings now, [] when /proc/PID/maps cannot be read."""
    return live_proc_maps(pid)


def start_brk(pid: int) -> Optional[int]:
    """Where the kernel started the process's heap (/proc/PID/stat), or None."""
    return proc_start_brk(f"/proc/{pid}")
