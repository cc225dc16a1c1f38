"""What the heap commands share: the header, arena selection, chunk rows and bin sizes."""

from typing import TYPE_CHECKING, List, Optional

from ..model.ptmalloc import STATES, Chunk, largebin_index
from ..model.ptmalloc.chunks import SIZE_BITS
from ..render import fmt
from ..target.errors import UserError
from ..target.process import evaluate_address

if TYPE_CHECKING:  # the target layer loads when a command runs, not at start-up
    from ..target.heap import HeapView

STATE_TOKENS = {"used": "used", "tcache": "free", "fastbin": "free", "unsorted": "free",
                "smallbin": "free", "largebin": "free", "top": "top", "mmapped": "used",
                "corrupt": "warning", "fencepost": "muted"}


def header_lines(view: "HeapView") -> List[str]:
    """How the anchors were found: a user judging a heuristic needs to know it is one."""
    f = view.found
    version = view.header()["glibc"] or "unknown (assumed %d.%d)" % tuple(view.layout.version)
    lines = [f"glibc {version}, layout from {f.get('layout', '?')}; "
             f"libc debug symbols: {'yes' if view.symbols else 'no'}"]
    if f.get("glibc", "").startswith("heuristic"):
        lines.append(f"glibc version: {f['glibc']}")
    for key in ("mappings", "main_arena", "mp_", "tcache", "thread_arena"):
        if key in f and f[key] not in ("symbol",) and not f[key].startswith("TLS variable"):
            lines.append(f"{key}: {f[key]}")
    return lines


def print_header(view: "HeapView", out) -> None:
    for text in header_lines(view):
        out.line([(text, "muted")])


def select_arenas(view: "HeapView", spec: Optional[str]):
    """'main', an arena number as `arenas` lists it, or an address expression."""
    arenas = view.state.arenas
    if spec is None:
        return list(arenas)
    if spec == "main":
        return [a for a in arenas if a.main]
    if spec.isdigit() and int(spec) < max(len(arenas), 64):
        n = int(spec)
        if n >= len(arenas):
            raise UserError(f"there is no arena {n}; 'arenas' lists {len(arenas)} "
                            f"(0 to {len(arenas) - 1})")
        return [arenas[n]]
    address = evaluate_address(spec)
    got = [a for a in arenas if a.address == address]
    if not got:
        raise UserError(f"{address:#x} is not an arena; 'arenas' lists them")
    return got


def arena_name(view: "HeapView", a) -> str:
    n = view.arena_number(a.address)
    return f"arena {n} ({'main_arena' if a.main else 'non-main'}) at {fmt.address(a.address)}"


def flag_letters(size_field: int) -> str:
    return ("P" if size_field & 1 else "-") + ("M" if size_field & 2 else "-") + \
        ("A" if size_field & 4 else "-")


def preview(data: Optional[bytes]) -> tuple:
    """(hex, ascii) of a chunk's first user bytes."""
    if data is None:
        return "??", ""
    hexpart = " ".join(data[i:i + 8].hex() for i in range(0, len(data), 8))
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    return hexpart, text


def read_or_none(view: "HeapView", address: int, size: int) -> Optional[bytes]:
    try:
        return view.state.memory.read(address, size)
    except Exception:  # MemoryReadError; a preview is never worth failing for
        return None


def chunk_json(c: Chunk, hdr: int) -> dict:
    return {"address": c.address, "size": c.size, "state": c.state_name,
            "user_address": c.address + hdr, "prev_inuse": bool(c.size_field & 1),
            "mmapped": bool(c.size_field & 2), "non_main_arena": bool(c.size_field & 4),
            "bin": c.bin, "prev_size": c.prev_size, "end": c.end}


def bin_size(view: "HeapView", kind: str, index: int) -> Optional[int]:
    """The chunk size a bin holds (the smallest, for a large bin); None for the unsorted bin."""
    L = view.layout
    if kind in ("tcache", "fastbin"):
        return L.minsize + index * L.malloc_alignment if kind == "tcache" else \
            (index + 2) * 2 * L.size_sz
    if kind == "smallbin":
        return (index - L.smallbin_correction) * L.smallbin_width
    if kind == "largebin":
        # largebin_index grows with the size: the smallest aligned size that reaches `index`.
        lo, hi = L.min_large_size // L.malloc_alignment, (1 << 44) // L.malloc_alignment
        while lo < hi:
            mid = (lo + hi) // 2
            if largebin_index(L, mid * L.malloc_alignment) >= index:
                hi = mid
            else:
                lo = mid + 1
        return lo * L.malloc_alignment
    return None


def state_names() -> List[str]:
    return list(STATES)


SHOWN_PER_CAUSE = 3   # problem lines of one cause in a table, before one line counts the rest
LISTED_PER_CAUSE = 20  # problems of one cause listed in JSON, before one entry counts the rest


def fold_problems(problems, keep: int):
    from ..model.ptmalloc.problems import fold_problems as fold
    return fold(problems, keep)


def problem_lines(problems) -> List[tuple]:
    """(address, text) per line to show: each cause's first few, then one line with a count
    (a forged list or a hostile heap can hold a million alike)."""
    from ..model.ptmalloc.problems import cause_of
    out = []
    for p, more, lo, hi in fold_problems(problems, SHOWN_PER_CAUSE):
        if not more:
            out.append((p.address, f"{fmt.address(p.address)}: {p.message}"))
        else:
            out.append((lo, f"{more:,} more of this kind, at {fmt.address(lo)} to "
                            f"{fmt.address(hi)} ({cause_of(p.message)})"))
    return out


def problems_json(problems) -> List[dict]:
    """The problems for --json: each cause's first LISTED_PER_CAUSE as they are, then one
    entry with the count of the rest ("more") and the range of their addresses."""
    from ..model.ptmalloc.problems import cause_of
    out = []
    for p, more, lo, hi in fold_problems(problems, LISTED_PER_CAUSE):
        if not more:
            out.append({"address": p.address, "message": p.message})
        else:
            out.append({"address": lo, "message": f"{more:,} more of this kind, at {lo:#x} to "
                                                  f"{hi:#x} ({cause_of(p.message)})",
                        "more": more, "last": hi})
    return out


__all__ = ["header_lines", "print_header", "select_arenas", "arena_name", "flag_letters",
           "preview", "read_or_none", "chunk_json", "bin_size", "state_names", "SIZE_BITS",
           "problem_lines", "problems_json"]
