"""--explain: after a command's output, a short paragraph per kind of region or chunk state
that appears, in plain words, quoting this process's own numbers (counts and bytes added up
from the same regions, chunks and rows the table shows)."""

from typing import Dict, Iterable, Iterator, Optional, Sequence

from ..model.regions import KINDS
from ..model.ptmalloc.chunks import STATES
from ..render import fmt
from . import Item, line

BIN_STATES = ("tcache", "fastbin", "unsorted", "smallbin", "largebin")

KIND_WORDS = {
    "code": "machine code of the program or a library, mapped read-only and executable from its file.",
    "rodata": "read-only data of a file: string literals, constant tables, ELF headers.",
    "data": "initialised global and static variables of a file, copied on write (relro: "
    "made read-only after relocation).",
    "bss": "zero-initialised globals: anonymous memory after a file's data, no bytes in the file.",
    "heap": "the brk heap: main_arena's memory, grown and shrunk by moving the program break.",
    "arena-heap": "a heap of a thread arena: memory malloc got with mmap for threads that did "
    "not find main_arena free.",
    "arena-reserved": "address space a thread arena reserved (PROT_NONE) to grow its heap into; "
    "it costs no memory until used.",
    "mmap-chunk": "one large malloc block served by its own mmap (at or above mp_.mmap_threshold).",
    "stack": "the main thread's stack: grows down on demand up to RLIMIT_STACK.",
    "thread-stack": "a thread's stack, allocated by pthread_create with mmap at a fixed size.",
    "guard": "a no-access page range below a thread's stack: overflowing into it faults at once.",
    "anon": "anonymous memory nothing else claimed: the program's own mmaps, TLS, loader data.",
    "file": "a file mapped by the program (mmap of a file) that is not a loaded object.",
    "vdso": "code the kernel maps in every process for fast system calls (gettimeofday).",
    "vvar": "kernel data the vDSO reads (clocks); not readable by gdb.",
    "vsyscall": "the legacy fixed-address system call page.",
}

STATE_WORDS = {
    "used": "handed out by malloc and not freed.",
    "tcache": "freed into a thread's tcache: the fastest reuse, per thread, up to 7 chunks a size; "
    "glibc counts them as in use.",
    "fastbin": "freed small chunks kept as they are (not merged) in a per-arena LIFO list.",
    "unsorted": "freed chunks waiting in the unsorted bin: the next malloc sorts them into bins.",
    "smallbin": "free chunks of one exact size, merged with free neighbours.",
    "largebin": "free chunks of a range of sizes, kept sorted by size.",
    "top": "the wilderness: the free space at the end of a heap that malloc splits when no bin serves.",
    "mmapped": "blocks served by their own mmap, given back with munmap on free.",
    "corrupt": "a chunk whose header the walk could not trust: see the problems listed.",
    "fencepost": "the small markers glibc writes at the end of a thread arena's heap.",
}


def paragraph(head: str, words: str) -> Iterator[Item]:
    yield [(head, "title"), (" " + words, None)]


def vmmap(regs) -> Iterator[Item]:
    """A paragraph per kind of region shown: how many, how much, what it is."""
    yield line("")
    yield line("explained:", "header")
    for kind in KINDS:
        rs = [r for r in regs if r.kind == kind]
        if rs:
            size = sum(r.size for r in rs)
            yield from paragraph(
                f"{kind} ({fmt.plural(len(rs), 'region')}, {fmt.human(size)}):", KIND_WORDS[kind]
            )


def heap_states(
    totals: Dict[str, Dict[str, int]], mp: Optional[dict], mmapped: Sequence = ()
) -> Iterator[Item]:
    """A paragraph per chunk state present (counts and bytes over the arenas shown), then
    what mp_.mmap_threshold is and why."""
    yield line("")
    yield line("explained:", "header")
    for state in STATES:
        t = totals.get(state)
        if state == "mmapped" and mmapped:
            t = {"count": len(mmapped), "bytes": sum(c.size for c in mmapped)}
        if t and t["count"]:
            yield from paragraph(
                f"{state} ({fmt.plural(t['count'], 'chunk')}, {fmt.human(t['bytes'])}):", STATE_WORDS[state]
            )
    if mp and mp.get("mmap_threshold"):
        thr = mp["mmap_threshold"]
        if thr == 128 * 1024:
            why = "glibc's default: no mmapped chunk larger than that has been freed."
        elif mp.get("no_dyn_threshold"):
            why = "set by mallopt or a tunable, so it no longer moves."
        else:
            why = (
                "raised from 128 KiB when a mmapped chunk of about that size was freed: glibc "
                "then serves such sizes from the heap instead."
            )
        yield from paragraph(f"mp_.mmap_threshold ({fmt.human(thr)}):", why)


def totals_of(arenas) -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = {}
    for a in arenas:
        for k, v in a.totals().items():
            d = out.setdefault(k, {"count": 0, "bytes": 0})
            d["count"] += v["count"]
            d["bytes"] += v["bytes"]
    return out


def threadstacks(rows: Iterable) -> Iterator[Item]:
    rows = list(rows)
    yield line("")
    yield line("explained:", "header")
    main = [r for r in rows if r.main]
    others = [r for r in rows if not r.main]
    if main:
        r = main[0]
        mapped = fmt.human(r.high - r.mapped_low) if r.high and r.mapped_low else "an unknown size"
        limit = "unlimited" if r.limit == -1 else (fmt.human(r.limit) if r.limit else "unknown")
        yield from paragraph(
            "main thread:",
            f"its stack grows down on demand; {mapped} is mapped now, and it may grow to the "
            f"limit (RLIMIT_STACK), {limit}.",
        )
    if others:
        sizes = sorted({r.size for r in others if r.size})
        guards = sorted({r.guard_size for r in others if r.guard_size is not None})
        yield from paragraph(
            f"other threads ({len(others)}):",
            "each stack is one mmap of a fixed size chosen at pthread_create ("
            + ", ".join(fmt.human(s) for s in sizes)
            + "), with a guard below it ("
            + ", ".join(fmt.human(g) for g in guards)
            + ") that faults on overflow.",
        )
    yield from paragraph(
        "used and peak:",
        "used is the stack's top less the thread's $sp now; peak is the deepest the stack "
        "has been used so far, as the table measures it.",
    )


BRK_WORDS = {
    "brk": "the program break moved: malloc grows (or trims) main_arena's heap this way.",
    "mmap": "a new mapping: malloc serves a block at or above mp_.mmap_threshold with its own mmap, "
    "and a thread arena gets its heap this way; the program's own mmaps are here too.",
    "munmap": "a mapping given back: free of a mmapped block, or the program's own munmap.",
    "mremap": "a mapping resized or moved: realloc of a mmapped block.",
}


def brk_log(events) -> Iterator[Item]:
    """A paragraph per kind of event shown (how many, bytes gained and released), then each
    change of mp_.mmap_threshold the events saw, with the munmap just before it."""
    events = list(events)
    yield line("")
    yield line("explained:", "header")
    for kind in ("brk", "mmap", "munmap", "mremap"):
        es = [e for e in events if e.kind == kind]
        if not es:
            continue
        gained = sum(e.delta for e in es if e.delta and e.delta > 0)
        released = -sum(e.delta for e in es if e.delta and e.delta < 0)
        failed = sum(1 for e in es if not e.ok)
        numbers = f"{fmt.plural(len(es), 'event')}, +{fmt.human(gained)} -{fmt.human(released)}"
        if failed:
            numbers += f", {failed} failed"
        yield from paragraph(f"{kind} ({numbers}):", BRK_WORDS[kind])
    before: Optional[int] = None
    last_munmap = None
    for e in events:
        if e.kind == "munmap" and e.ok:
            last_munmap = e
        if e.mmap_threshold is None:
            continue
        if before is not None and e.mmap_threshold != before:
            why = (
                f" after a munmap of {fmt.human(last_munmap.length)} (event {last_munmap.seq}): "
                "free() of a mmapped block raises the threshold to its size, so blocks that size "
                "now come from the heap"
                if last_munmap is not None and last_munmap.length
                else ""
            )
            yield from paragraph(
                f"mp_.mmap_threshold {fmt.human(before)} -> {fmt.human(e.mmap_threshold)}:",
                f"changed by event {e.seq}{why}.",
            )
        before = e.mmap_threshold
