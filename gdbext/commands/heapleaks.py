"""heapleaks: the used chunks no root reaches (model/leaks.py has the roots, nodes and edges)."""

from ..model.regions import region_at
from ..render import jsonout
from ..inferior.errors import UserError
from ..inferior.process import Target
from ..views import leaks as leak_views
from .allocwatch import require_site_table, site_table
from .base import GdbextCommand
from .lazy_inferior import leaks, regions, target_json

SIGNATURE_KINDS = ("code", "rodata", "data", "bss")
MAX_SIGNATURES = 256  # distinct first words named through gdb


def signatures(target, words) -> dict:
    """{word: name} for first words that point into a code or data segment: 'cyc_ops',
    'vtable for Foo+16', else the segment ('data of /usr/bin/prog+0x18')."""
    regs = regions(target)
    out: dict = {}
    for w in sorted(set(words))[: MAX_SIGNATURES * 4]:
        r = region_at(regs, w)
        if r is None or r.kind not in SIGNATURE_KINDS:
            continue
        if len(out) >= MAX_SIGNATURES:
            break
        out[w] = leaks().symbol_at(w) or f"{r.describe()}+{w - r.start:#x}"
    return out


class HeapLeaks(GdbextCommand):
    name = "heapleaks"
    summary = "List the used malloc chunks that no root reaches: what the program can never free."
    details = (
        "Roots: every thread's registers and live stack (from SP - 128, the red zone, up), the\n"
        "writable segments of the program and its libraries, TLS, and anonymous mappings that\n"
        "are not malloc's.  Nodes: used chunks and mmapped chunks (not the tcaches).  An edge is\n"
        "any aligned word in a root or a node that points into a node's user memory (interior\n"
        "pointers count); free chunks hold no edges.  'unref': no word at all points at the\n"
        "chunk (the head of a leaked structure).  'reaches': the leaked chunks it points to,\n"
        "directly or not.  --by size|signature|site groups them (signature: the first word, when\n"
        "it points into a code or data segment, named by its symbol; site: the call site that\n"
        "allocated it, from 'allocwatch')."
    )

    def add_arguments(self, p):
        p.add_argument("--summary", action="store_true", help="totals and roots only")
        p.add_argument(
            "--by", choices=("size", "signature", "site"), help="group the leaked chunks (site: allocwatch's)"
        )
        p.add_argument("--limit", type=int, metavar="N", help="show at most N leaked chunks")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        if args.limit is not None and args.limit < 0:
            raise UserError("--limit must be 0 or more")
        target = Target()
        inputs, reach = leaks().reachability(target)
        view = inputs.view
        leaked, unknown = leak_views.split(reach)
        memory = view.state.memory or target.memory
        firsts = leak_views.first_words(memory, reach.nodes, leaked)
        words = [int.from_bytes(d[:8], "little") for d in firsts.values() if d and len(d) >= 8]
        names = signatures(target, words)
        table = require_site_table("heapleaks") if args.by == "site" else site_table()
        shown = leak_views.rows(reach, leaked, firsts, names, args.limit)
        all_rows = (
            shown
            if not args.by or args.limit is None
            else leak_views.rows(reach, leaked, firsts, names, None)
        )
        if table is not None:
            for r in {id(r): r for r in shown + all_rows}.values():
                r.site = table.label_of(r.user_address)
        if args.json:
            body = leak_views.leaks_document(view, reach, shown, all_rows, leaked, unknown, args.by)
            if args.summary:
                body.pop("leaked")
            out.json(jsonout.document("heapleaks", target_json(target), **body))
            return
        out.emit(leak_views.leaks_text(view, reach, shown, all_rows, leaked, unknown, args.by, args.summary))


COMMANDS = (HeapLeaks,)
