"""chunk ADDRESS: explain the one malloc chunk that holds an address."""

from ..model.regions import region_at
from ..render import jsonout
from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..views import allocwatch as aw_views
from ..views import chunk as chunk_views
from ..views import line
from .allocwatch import site_table
from .base import GdbextCommand, expression
from .lazy_inferior import chunk_view, target_json, regions


class ChunkCommand(GdbextCommand):
    name = "chunk"
    summary = "Explain the malloc chunk that holds an address: fields, state, bin, neighbours."
    details = (
        "ADDRESS is any gdb expression: a chunk address, the pointer malloc returned, or\n"
        "any address inside a chunk. The chunk's state comes from the free lists; any\n"
        "problem the heap model found inside the chunk is listed with it."
    )

    def add_arguments(self, p):
        p.add_argument("address", metavar="ADDRESS", type=expression, help="an address expression")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        expression = args.address.strip()
        target = Target()
        address = evaluate_address(expression)
        view = chunk_view(target, address)  # not the whole heap: one chunk's answer
        c = view.state.chunk_at(address)
        if c is None:
            header = chunk_views.in_no_chunk(view, address)
            if header:
                raise UserError(f"{address:#x} is in no chunk: it is in {header}")
            r = region_at(regions(target), address)
            where = r.describe() if r is not None else "unmapped memory"
            raise UserError(
                f"{address:#x} is in no heap chunk gdbext found ({where}); 'vmmap {address:#x}' says more"
            )
        facts = chunk_views.facts(view, c)
        table = site_table()
        user = c.user_address(view.layout)
        known = (*table.site_of(user), table.allocation_of(user)) if table is not None else None
        if args.json:
            body = chunk_views.document_body(view, facts, address)
            body["allocation"] = aw_views.allocation_json(*known) if known else None
            out.json(jsonout.document("chunk", target_json(target), **body))
            return
        out.emit(chunk_views.text(view, facts, address, expression))
        if known:
            out.emit([line(aw_views.allocation_text(*known))])


COMMANDS = (ChunkCommand,)
