"""What the leak scan needs from the target: the roots (registers, each thread's live stack,
writable segments, TLS, anonymous mappings that are not malloc's), the nodes (the heap model's
used chunks), and the memory of both, read in large blocks once.  The scan itself is
model/leaks.py."""

from dataclasses import dataclass, field
from itertools import compress
from typing import Dict, Iterator, List, Optional, Tuple

import gdb

from ..model.leaks import (
    Nodes,
    Reachability,
    Register,
    Root,
    nodes_from_state,
    referrers,
    scan,
    word_hits,
)
from ..model.memory import MemoryReadError
from ..model.ptmalloc.chunks import CORRUPT
from .errors import UserError
from .heap import HeapView, TLS_SPAN, heap_view
from .mappings import mappings
from .process import Target, cached
from .regions import regions
from .stacks import thread_stacks
from .threads import list_threads, selection_kept, thread_registers

RED_ZONE = 128  # the System V x86-64 ABI's: a leaf function's data may live below SP
WINDOW = 16 << 20  # bytes read at once
PAGE = 4096
TCB_SPAN = 0x1000  # struct pthread above a thread pointer, as the TLS root counts it
_STATIC = ("data", "bss")
_CORRUPT = bytes(int(c == CORRUPT) for c in range(256))


@dataclass
class LeakInputs:
    view: HeapView
    nodes: Nodes
    registers: List[Register]
    roots: List[Root]
    skipped: List[str] = field(default_factory=list)


def leak_inputs(target: Target) -> LeakInputs:
    return cached("leak_inputs", lambda: _leak_inputs(target))


def _leak_inputs(target: Target) -> LeakInputs:
    if target.pointer_size != 8:
        raise UserError(
            "the leak scan reads 64-bit (x86-64) processes only; "
            f"this one has {8 * target.pointer_size}-bit pointers"
        )
    view = heap_view(target)
    hdr = view.layout.chunk_hdr_sz
    tcaches = [t.address - hdr for t in view.state.tcache.values() if t.address]
    nodes = nodes_from_state(view.state, view.layout, tcaches)
    registers = [Register(t, name, v) for t, name, v in thread_registers()]
    roots, skipped = _roots(target, view)
    return LeakInputs(view, nodes, registers, roots, skipped)


def _roots(target: Target, view: HeapView) -> Tuple[List[Root], List[str]]:
    """Every root range, in address order, less malloc's own structures (main_arena, mp_)."""
    maps = mappings(target)
    threads = list_threads()
    sp = {t.num: t.sp for t in threads}
    out: List[Root] = []
    skipped: List[str] = []
    stacks = thread_stacks(target, maps)
    for s in stacks:
        top = sp.get(s.thread)
        if top is None:
            skipped.append(f"the stack of thread {s.thread} (no SP)")
            continue
        lo = max(s.low, (top - RED_ZONE) & ~7)
        if lo < s.high:
            out.append(Root("stack", lo, s.high, f"thread {s.thread}", s.thread))
    for r in regions(target):
        if not r.perms.startswith("r"):
            continue
        if r.kind in _STATIC:
            out.append(Root("static", r.start, r.end, r.describe()))
        elif r.kind == "anon" and r.perms[1:2] == "w":
            out.append(Root("anon", r.start, r.end, "anonymous mapping"))
    holes = []
    L = view.layout
    anchors = view.anchors
    if anchors is not None:
        holes.append((anchors.main_arena, anchors.main_arena + L.malloc_state.sizeof))
        if anchors.mp is not None:
            holes.append((anchors.mp, anchors.mp + L.malloc_par.sizeof))
    out = _cut(out, holes)
    tops = _outermost_sps()
    # another thread's stack or thread block (with its TLS, below it in that stack's mapping)
    # is never this thread's TLS: the main thread's TLS block may be mapped right above one
    others = [(st.low, st.high) for st in stacks]
    others += [(t.fs_base, t.fs_base + TCB_SPAN) for t in threads if t.fs_base]
    tls = []
    for t in threads:
        if t.fs_base:
            lo = t.fs_base - TLS_SPAN
            if not t.is_main and tops.get(t.num) and tops[t.num] <= t.fs_base:
                lo = max(lo, tops[t.num])  # a thread's first frame starts where its TLS ends
            lo = max([lo] + [hi for a, hi in others if lo < hi <= t.fs_base and not a <= t.fs_base < hi])
            tls.append((lo, t.fs_base + TCB_SPAN, t.num))
    return _relabel_tls(sorted(out, key=lambda r: r.start), tls), skipped


def _outermost_sps(limit: int = 256) -> Dict[int, int]:
    """Each thread's outermost frame's SP: for a thread glibc started, where its stack ends and
    its static TLS begins.  Threads whose walk does not end within `limit` frames are left out
    (their TLS is the fixed window below the thread pointer)."""
    inf = gdb.selected_inferior()
    out: Dict[int, int] = {}
    with selection_kept():
        for t in inf.threads():
            try:
                t.switch()
                frame, n = gdb.newest_frame(), 0
                while n < limit:
                    older = frame.older()
                    if older is None:
                        out[t.num] = int(frame.read_register("sp"))
                        break
                    frame, n = older, n + 1
            except (gdb.error, RuntimeError):
                continue
    return out


def _cut(roots: List[Root], holes) -> List[Root]:
    out: List[Root] = []
    for r in roots:
        pieces = [(r.start, r.end)]
        for lo, hi in holes:
            nxt = []
            for s, e in pieces:
                if hi <= s or lo >= e:
                    nxt.append((s, e))
                    continue
                if s < lo:
                    nxt.append((s, lo))
                if hi < e:
                    nxt.append((hi, e))
            pieces = nxt
        out.extend(Root(r.kind, s, e, r.label, r.thread) for s, e in pieces)
    return out


def _relabel_tls(roots: List[Root], tls) -> List[Root]:
    """The part of the roots around each thread pointer (static TLS below it, struct pthread
    above) is TLS: the same words, counted and named as TLS."""
    out = roots
    for lo, hi, thread in tls:
        nxt = []
        for r in out:
            if r.kind == "tls" or hi <= r.start or lo >= r.end:
                nxt.append(r)
                continue
            a, b = max(lo, r.start), min(hi, r.end)
            if r.start < a:
                nxt.append(Root(r.kind, r.start, a, r.label, r.thread))
            nxt.append(Root("tls", a, b, f"TLS of thread {thread}", thread))
            if b < r.end:
                nxt.append(Root(r.kind, b, r.end, r.label, r.thread))
        out = nxt
    return out


def read_blocks(memory, start: int, end: int, skipped: List[str], what: str) -> Iterator[Tuple[int, bytes]]:
    """[start, end) in WINDOW pieces; a piece that cannot be read is tried page by page, and
    what stays unreadable is said once in `skipped`."""
    lost = 0
    a = start
    while a < end:
        b = min(end, a + WINDOW)
        try:
            yield a, memory.read(a, b - a)
        except MemoryReadError:
            p = a
            while p < b:
                q = min(b, (p + PAGE) & ~(PAGE - 1))
                try:
                    yield p, memory.read(p, q - p)
                except MemoryReadError:
                    lost += q - p
                p = q
        a = b
    if lost:
        skipped.append(f"{lost} unreadable bytes of {what} at {start:#x}")


def root_blocks(target: Target, roots: List[Root], skipped: List[str]):
    for r in roots:
        for a, data in read_blocks(target.memory, r.start, r.end, skipped, r.label or r.kind):
            yield r, a, data


def node_blocks(target: Target, view: HeapView, skipped: List[str]):
    """The heaps (from their first chunk) and the mmapped chunks, whole: free chunks too, which
    the scan skips by itself."""
    spans = []
    for a in view.state.arenas:
        for seg in a.heaps:
            spans.append((seg.first_chunk, seg.end, "a heap"))
    for m in view.state.mmapped:
        spans.append((m.address, m.address + m.size, "an mmapped chunk"))
    for lo, hi, what in sorted(spans):
        yield from read_blocks(target.memory, lo, hi, skipped, what)


def unwalked_blocks(target: Target, view: HeapView, skipped: List[str]):
    """Heap memory whose words may or may not be edges: past where a heap's walk stopped (chunks
    nobody could list) and inside corrupt chunks (a used chunk with a smashed header, maybe)."""
    hdr = view.layout.chunk_hdr_sz
    for a in view.state.arenas:
        for seg in a.heaps:
            for i in compress(range(len(seg)), seg.states.translate(_CORRUPT)):
                lo, hi = seg.addrs[i] + hdr, min(seg.chunk_end(i), seg.end)
                if lo < hi:
                    yield from read_blocks(target.memory, lo, hi, skipped, "a corrupt chunk")
            if seg.complete:
                continue
            lo = seg.chunk_end(len(seg) - 1) if len(seg) else seg.first_chunk
            if lo < seg.end:
                skipped.append(f"{seg.end - lo} bytes of a heap past where its walk stopped, at {lo:#x}")
                yield from read_blocks(target.memory, lo, seg.end, skipped, "an unwalked heap")


def reachability(target: Target) -> Tuple[LeakInputs, Reachability]:
    def compute():
        inputs = leak_inputs(target)
        skipped = list(inputs.skipped)
        got = scan(
            inputs.nodes,
            inputs.registers,
            root_blocks(target, inputs.roots, skipped),
            node_blocks(target, inputs.view, skipped),
            unwalked_blocks(target, inputs.view, skipped),
        )
        got.skipped = skipped
        return inputs, got

    return cached("reachability", compute)


def root_word(target: Target, root: Root, lo: int, hi: int) -> Optional[int]:
    """The address of the first word of `root` that points into [lo, hi), or None."""
    for a, data in read_blocks(target.memory, root.start, root.end, [], root.label):
        hits = sorted(word_hits(data, a, [(lo, hi)]))
        if hits:
            return hits[0][0]
    return None


def root_for(target: Target, lo: int, hi: int) -> Optional[Tuple[Root, int]]:
    """(root, address of its word) of the first root, in address order, whose words point into
    [lo, hi), or None."""
    for r in leak_inputs(target).roots:
        a = root_word(target, r, lo, hi)
        if a is not None:
            return r, a
    return None


def find_referrers(target: Target, lo: int, hi: int):
    inputs = leak_inputs(target)
    skipped = list(inputs.skipped)
    roots, heap = referrers(
        lo,
        hi,
        inputs.registers,
        root_blocks(target, inputs.roots, skipped),
        node_blocks(target, inputs.view, skipped),
    )
    return inputs, roots, heap, skipped


def symbol_at(address: int) -> Optional[str]:
    """'g_array+8' for a global's address (gdb's minimal symbols), or None."""
    try:
        text = gdb.execute(f"info symbol {address:#x}", to_string=True).strip()
    except gdb.error:
        return None
    if not text or text.startswith("No symbol"):
        return None
    name = text.split(" in section ")[0]
    return name.replace(" + ", "+")
