"""addrinfo EXPRESSION: what an address is, in one line; annotate EXPRESSION [COUNT]: words
from there, each value with what it points to."""

from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..model.memory import MemoryReadError
from ..model.regions import region_at
from ..render import jsonout
from ..views import addrinfo as view
from .base import GdbextCommand, expression
from .lazy_inferior import chunk_view, frame_at, heap_view, regions, target_json

MAX_WORDS = 4096


def _symbol_at(target, regs, address):
    from ..inferior.addrinfo import symbol_at

    return symbol_at(target, regs, address)


def _heap(make):
    """The heap model, or None where there is none to ask (no glibc malloc, nothing found)."""
    try:
        return make()
    except Exception:  # the other parts still answer; `heapchunks` says what is wrong
        return None


def address_facts(target, address: int, heap) -> view.AddressFacts:
    regs = regions(target)
    r = region_at(regs, address)
    frame = None
    if r is not None and r.thread is not None and r.kind in ("stack", "thread-stack"):
        frame = frame_at(r.thread, address, r.end)
    return view.AddressFacts(address, r, _symbol_at(target, regs, address), heap, frame)


class AddrInfo(GdbextCommand):
    name = "addrinfo"
    summary = "Say in one line what an address is: region, symbol, chunk, thread and frame."
    details = (
        "The region and its owner as vmmap classifies it; the nearest ELF symbol from the\n"
        "object's .symtab, else its .dynsym (a stripped object still answers); the malloc\n"
        "chunk that holds it, its state and bin (and whose tcache); for a stack, the frame\n"
        "whose part of the stack holds it, with the offset from that frame's CFA."
    )

    def add_arguments(self, p):
        p.add_argument("address", metavar="EXPRESSION", type=expression, help="an address expression")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        target = Target()
        address = evaluate_address(args.address.strip())
        heap = _heap(lambda: chunk_view(target, address))
        facts = address_facts(target, address, heap)
        if args.json:
            out.json(jsonout.document("addrinfo", target_json(target), **view.as_dict(facts)))
        else:
            out.emit(view.line_items(facts))


class Annotate(GdbextCommand):
    name = "annotate"
    summary = "Show COUNT words from an address, each value with addrinfo's line for it."
    details = (
        "COUNT (default 8, at most 4096) follows the expression after a space: annotate $sp 16.\n"
        "Words are the target's pointer size; each value is described as addrinfo would."
    )

    def add_arguments(self, p):
        p.add_argument("address", metavar="EXPRESSION", type=expression, help="an address expression")
        p.add_argument("--count", type=int, metavar="COUNT", help="how many words (default 8)")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        expr = args.address.strip()
        count = args.count
        words = expr.rsplit(None, 1)
        # `annotate $sp 16`: COUNT after the expression; `$sp + 16` is an expression
        if len(words) == 2 and words[1].isdigit() and (words[0][-1].isalnum() or words[0][-1] in "_)]$"):
            if count is not None and count != int(words[1]):
                raise UserError(f"two counts, {words[1]} and --count {count}: give one")
            expr, count = words[0], int(words[1])
        count = 8 if count is None else count
        if not 0 < count <= MAX_WORDS:
            raise UserError(f"COUNT must be 1 to {MAX_WORDS}")
        target = Target()
        start = evaluate_address(expr)
        size = target.pointer_size
        heap = _heap(lambda: heap_view(target))
        rows = []
        top = 1 << (8 * size)
        for k in range(count):
            addr = start + k * size
            if addr + size > top:
                break  # the address space ends here
            try:
                data = target.memory.read(addr, size)
            except MemoryReadError:
                rows.append((addr, None, None))
                continue
            value = int.from_bytes(data, "little")
            rows.append((addr, value, address_facts(target, value, heap)))
        if args.json:
            words_doc = [
                {"address": a, "value": v, "points_to": view.as_dict(f) if f is not None else None}
                for a, v, f in rows
            ]
            out.json(jsonout.document("annotate", target_json(target), words=words_doc))
        else:
            out.emit(view.annotate_items(rows))


COMMANDS = (AddrInfo, Annotate)
