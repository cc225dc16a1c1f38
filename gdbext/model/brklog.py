"""brkwatch's bookkeeping: one event per change of the program break or anonymous mapping,
decoded from a system call's arguments and result, with running totals and a summary.

No gdb here: the target hands over register values and frames as plain data.
"""

import errno
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Tuple

PAGE = 0x1000
MAP_ANONYMOUS = 0x20
KINDS = ("brk", "mmap", "munmap", "mremap")

ALLOC_FUNCTIONS = (
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "memalign",
    "aligned_alloc",
    "posix_memalign",
    "valloc",
    "pvalloc",
)

METHODS = ("auto", "watch", "break", "syscall")  # how brkwatch may watch the break


def page_up(n: int, page: int = PAGE) -> int:
    return (n + page - 1) // page * page


def signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, f"errno {code}")


def syscall_result(rax: int) -> Tuple[bool, int, str]:
    """(ok, value, result text) of a raw system call return: -4095..-1 is -errno."""
    s = signed64(rax)
    if -4095 <= s < 0:
        return False, s, errno_name(-s)
    return True, rax & ((1 << 64) - 1), "ok"


def alloc_name(function: Optional[str]) -> Optional[str]:
    """'__GI___libc_malloc' -> 'malloc'; None unless it is an allocator entry point."""
    if not function:
        return None
    name = function
    for prefix in ("__GI_", "__libc_", "__"):
        while name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.split("@")[0]
    return name if name in ALLOC_FUNCTIONS else None


@dataclass
class BrkEvent:
    kind: str  # brk, mmap, munmap, mremap
    delta: Optional[int]  # bytes gained (negative: released); 0 for a failure
    result: str  # "ok", or the errno name ("ENOMEM"); "refused" for a brk below the heap start
    old_brk: Optional[int] = None
    new_brk: Optional[int] = None
    address: Optional[int] = None  # the range gained or lost (brk), mapped or unmapped (mmap...)
    length: Optional[int] = None
    requested: Optional[int] = None  # brk: the break asked for; mmap: the address hint
    old_address: Optional[int] = None  # mremap
    old_length: Optional[int] = None
    prot: Optional[int] = None
    flags: Optional[int] = None
    thread: Optional[int] = None
    tid: Optional[int] = None
    caller: Optional[dict] = None  # {"function", "file", "line", "pc"}
    via: List[str] = field(default_factory=list)  # libc functions between the call and the caller
    alloc: Optional[dict] = None  # {"function": "malloc", "size": 204800 | None}
    backtrace: List[dict] = field(default_factory=list)
    mmap_threshold: Optional[int] = None
    source: str = ""  # how it was caught: "libc brk", "syscall()", "catch syscall", ...
    seq: int = 0
    heap_total: Optional[int] = None
    mmapped_total: int = 0

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def to_json(self) -> dict:
        return {
            "seq": self.seq,
            "thread": self.thread,
            "tid": self.tid,
            "kind": self.kind,
            "old_brk": self.old_brk,
            "new_brk": self.new_brk,
            "address": self.address,
            "length": self.length,
            "delta": self.delta,
            "result": self.result,
            "caller": self.caller,
            "mmap_threshold": self.mmap_threshold,
            "requested": self.requested,
            "old_address": self.old_address,
            "old_length": self.old_length,
            "prot": self.prot,
            "flags": self.flags,
            "via": list(self.via),
            "alloc": self.alloc,
            "backtrace": list(self.backtrace),
            "heap_total": self.heap_total,
            "mmapped_total": self.mmapped_total,
            "source": self.source,
        }


# ---- decoding one system call ------------------------------------------------------------


def decode_brk(requested: int, result: int, old: Optional[int]) -> Optional[BrkEvent]:
    """brk(requested) returned `result` (the break after the call); `old` is the break before,
    when known.  None when nothing was asked to change: brk(0) and brk(current) are queries."""
    if requested == 0:
        return None
    if result == requested:
        if old is not None and old == result:
            return None
        delta = result - old if old is not None else None
        if old is None:
            return BrkEvent("brk", None, "ok", old, result, None, None, requested)
        lo, hi = min(old, result), max(old, result)
        return BrkEvent("brk", delta, "ok", old, result, lo, hi - lo, requested)
    # The kernel answers a refused brk with the unchanged break.
    text = "ENOMEM" if requested > result else "refused"
    return BrkEvent("brk", 0, text, old if old is not None else result, result, None, 0, requested)


def decode_mmap(addr: int, length: int, prot: int, flags: int, rax: int) -> Optional[BrkEvent]:
    if not flags & MAP_ANONYMOUS:
        return None
    ok, value, text = syscall_result(rax)
    size = page_up(length)
    if ok:
        return BrkEvent(
            "mmap", size, "ok", address=value, length=size, requested=addr or None, prot=prot, flags=flags
        )
    return BrkEvent(
        "mmap", 0, text, address=None, length=size, requested=addr or None, prot=prot, flags=flags
    )


def decode_munmap(addr: int, length: int, rax: int) -> BrkEvent:
    ok, _, text = syscall_result(rax)
    size = page_up(length)
    return BrkEvent("munmap", -size if ok else 0, text, address=addr, length=size)


def decode_mremap(old_addr: int, old_len: int, new_len: int, flags: int, rax: int) -> BrkEvent:
    ok, value, text = syscall_result(rax)
    old_size, new_size = page_up(old_len), page_up(new_len)
    return BrkEvent(
        "mremap",
        new_size - old_size if ok else 0,
        text,
        address=value if ok else None,
        length=new_size,
        old_address=old_addr,
        old_length=old_size,
        flags=flags,
    )


# ---- which unmapped memory was anonymous ----------------------------------------------------


class FileRanges:
    """The file-backed address ranges, kept up to date from mmap/munmap/mremap, so that an
    munmap of a file mapping (not malloc's business) can be left out of the log."""

    def __init__(self, ranges=()):
        self.ranges: List[Tuple[int, int]] = sorted((s, e) for s, e in ranges if e > s)

    def remove(self, start: int, end: int):
        out = []
        for s, e in self.ranges:
            if e <= start or s >= end:
                out.append((s, e))
                continue
            if s < start:
                out.append((s, start))
            if e > end:
                out.append((end, e))
        self.ranges = out

    def add(self, start: int, end: int):
        self.remove(start, end)
        self.ranges.append((start, end))
        self.ranges.sort()

    def covers(self, start: int, end: int) -> bool:
        """True when every byte of [start, end) is file-backed."""
        pos = start
        for s, e in self.ranges:
            if e <= pos:
                continue
            if s > pos:
                return False
            pos = e
            if pos >= end:
                return True
        return pos >= end

    def moved(self, old_start: int, old_end: int, new_start: int, new_end: int):
        was_file = self.covers(old_start, old_end)
        self.remove(old_start, old_end)
        if was_file:
            self.add(new_start, new_end)


# ---- the log ------------------------------------------------------------------------------


@dataclass
class Summary:
    events: int = 0
    brk_events: int = 0
    map_events: int = 0
    failures: int = 0
    brk_growth: int = 0  # net change of the break over the logged events
    mmapped_growth: int = 0  # net anonymous bytes mapped over the logged events
    largest: Optional[Tuple[int, int]] = None  # (seq, delta) of the largest step either way
    first_brk: Optional[int] = None
    last_brk: Optional[int] = None

    def to_json(self) -> dict:
        return {
            "events": self.events,
            "brk_events": self.brk_events,
            "map_events": self.map_events,
            "failures": self.failures,
            "net_brk": self.brk_growth,
            "net_mmapped": self.mmapped_growth,
            "net_growth": self.brk_growth + self.mmapped_growth,
            "largest_step": ({"seq": self.largest[0], "delta": self.largest[1]} if self.largest else None),
            "first_brk": self.first_brk,
            "last_brk": self.last_brk,
        }


class BrkLog:
    """Events in order with their running totals; keeps the newest `limit` events."""

    def __init__(self, limit: int = 200000):
        self.events: Deque[BrkEvent] = deque(maxlen=limit)
        self.limit = limit
        self.pid: Optional[int] = None
        self.start_brk: Optional[int] = None  # where the heap starts: totals are measured from it
        self.summary = Summary()
        self.notes: List[str] = []
        self._seq = 0
        self._mmapped = 0

    def __len__(self):
        return len(self.events)

    @property
    def dropped(self) -> int:
        return self.summary.events - len(self.events)

    def clear(self, note: Optional[str] = None, pid: Optional[int] = None):
        self.events.clear()
        self.summary = Summary()
        self._seq = 0
        self._mmapped = 0
        self.start_brk = None
        self.pid = pid
        self.notes = [note] if note else []

    def new_program(self, note: str, start_brk: Optional[int]):
        """The process executed a new program: the events so far stay; the heap totals of the
        next ones count from the new program's heap."""
        self.notes.append(note)
        self.start_brk = start_brk
        self.summary.last_brk = None

    def add(self, e: BrkEvent) -> BrkEvent:
        self._seq += 1
        e.seq = self._seq
        s = self.summary
        s.events += 1
        if not e.ok:
            s.failures += 1
        if e.kind == "brk":
            s.brk_events += 1
            if self.start_brk is None and e.old_brk is not None:
                self.start_brk = e.old_brk
            if s.first_brk is None:
                s.first_brk = e.old_brk if e.old_brk is not None else e.new_brk
            if e.new_brk is not None:
                s.last_brk = e.new_brk
            if e.ok and e.delta:
                s.brk_growth += e.delta
        else:
            s.map_events += 1
            if e.ok and e.delta:
                self._mmapped += e.delta
                s.mmapped_growth += e.delta
        if e.delta and (s.largest is None or abs(e.delta) > abs(s.largest[1])):
            s.largest = (e.seq, e.delta)
        brk = s.last_brk
        e.heap_total = brk - self.start_brk if brk is not None and self.start_brk is not None else None
        e.mmapped_total = self._mmapped
        self.events.append(e)
        return e

    def selected(self, kinds=None, last: Optional[int] = None) -> List[BrkEvent]:
        evs = [e for e in self.events if not kinds or e.kind in kinds]
        return evs[-last:] if last else evs


def threshold_changes(events) -> List[Tuple[int, int, int]]:
    """(seq, old, new) wherever mp_.mmap_threshold differs from the event before."""
    out, prev = [], None
    for e in events:
        t = e.mmap_threshold
        if t is not None and prev is not None and t != prev:
            out.append((e.seq, prev, t))
        if t is not None:
            prev = t
    return out


PROT_NAMES = ((1, "r"), (2, "w"), (4, "x"))


def prot_text(prot: Optional[int]) -> str:
    if prot is None:
        return ""
    if prot == 0:
        return "---"
    return "".join(c if prot & bit else "-" for bit, c in PROT_NAMES)


def describe_alloc(alloc: Optional[dict]) -> str:
    if not alloc:
        return ""
    size = alloc.get("size")
    if size is not None:
        return f"{alloc['function']}({size})"
    if alloc.get("pointer") is not None:
        return f"{alloc['function']}({alloc['pointer']:#x})"
    return alloc["function"]


def counts_by_kind(events) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for e in events:
        out[e.kind] = out.get(e.kind, 0) + 1
    return out
