"""Per-thread malloc pointers (tcache, thread_arena) without symbols, from the threads' TLS.

On x86-64 a library's static TLS block lies at the same negative offset from every thread's
thread pointer (fs_base).  So one offset that holds, in every thread, either NULL or a value
we already trust (a tcache found by its shape, an arena from the arena list) names the
variable for all threads at once — including threads whose value we could not have guessed.
"""

from typing import Callable, Dict, Hashable, Mapping, Optional, TypeVar

# A thread's label: the callers use gdb thread numbers, the tests whatever they like.
Thread = TypeVar("Thread", bound=Hashable)


def find_tls_slot(
    below_tp: Mapping[Thread, bytes], known: Callable[[int], bool], pointer_size: int = 8, min_hits: int = 1
) -> Optional[int]:
    """The offset below the thread pointer whose word is, in every thread, NULL or `known`.

    below_tp: per thread, the bytes just below its thread pointer (the last byte is at
    fs_base - 1; blocks may differ in length).  The offset with the most known values wins;
    ties go to the one nearest the thread pointer.  None when no offset has min_hits.
    """
    if not below_tp:
        return None
    p = pointer_size
    span = min(len(b) for b in below_tp.values()) // p * p
    best, best_hits = None, 0
    for off in range(p, span + 1, p):
        hits = 0
        for block in below_tp.values():
            end = len(block) - off
            v = int.from_bytes(block[end : end + p], "little")
            if v == 0:
                continue
            if not known(v):
                hits = -1
                break
            hits += 1
        if hits > best_hits:
            best, best_hits = off, hits
    return best if best_hits >= min_hits else None


def slot_values(below_tp: Mapping[Thread, bytes], offset: int, pointer_size: int = 8) -> Dict[Thread, int]:
    """Each thread's word at `offset` below its thread pointer."""
    out: Dict[Thread, int] = {}
    for label, block in below_tp.items():
        end = len(block) - offset
        if end >= 0:
            out[label] = int.from_bytes(block[end : end + pointer_size], "little")
    return out
