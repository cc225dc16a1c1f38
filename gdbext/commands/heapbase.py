"""What the heap commands do alike at the edge: pick arenas from --arena (an address is a gdb
expression), and write the anchors' header and the problems a view built."""

from typing import Optional, TYPE_CHECKING

from ..inferior.errors import UserError
from ..inferior.process import evaluate_address
from ..views.heap import arena_name, header_items
from ..views.problems import problem_items, problems_json, problems_within

if TYPE_CHECKING:  # the inferior layer loads when a command runs, not at start-up
    from ..inferior.heap import HeapView


_LOWEST_MAP = 0x10000  # Linux's default vm.mmap_min_addr: a smaller number is an arena's number


def select_arenas(view: "HeapView", spec: Optional[str]):
    """'main', an arena number as `arenas` lists it, or an address expression."""
    arenas = view.state.arenas
    if spec is None:
        return list(arenas)
    if spec == "main":
        return [a for a in arenas if a.main]
    if spec.isdigit() and int(spec) < max(len(arenas), _LOWEST_MAP):  # no arena lives that low
        n = int(spec)
        if n >= len(arenas):
            raise UserError(f"there is no arena {n}; 'arenas' lists {len(arenas)} (0 to {len(arenas) - 1})")
        return [arenas[n]]
    address = evaluate_address(spec)
    got = [a for a in arenas if a.address == address]
    if not got:
        raise UserError(f"{address:#x} is not an arena; 'arenas' lists them")
    return got


def print_header(view: "HeapView", out) -> None:
    out.emit(header_items(view))


def problems(view: "HeapView", out, within=None):
    """Every problem the model found (or those in [lo, hi)): one line each, and past the first
    few of one cause, one line that counts the rest."""
    shown = problems_within(view.state.problems, within)
    out.emit(problem_items(shown, view.layout.pointer_size))
    return shown


__all__ = ["select_arenas", "print_header", "problems", "arena_name", "problems_json"]
