"""heaprefs ADDRESS: every word that points into one chunk, and with --path why it is alive."""

from ..model.leaks import Register
from ..model.regions import region_at
from ..render import jsonout
from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..views import chunk as chunk_views
from ..views import leaks as leak_views
from .base import GdbextCommand, expression
from .lazy_inferior import frame_at, leaks, regions, target_json

MAX_NAMED = 512  # referrers named through gdb (frames, symbols); the rest keep their region


class HeapRefs(GdbextCommand):
    name = "heaprefs"
    summary = "List every place that holds a pointer into the chunk at an address; --path: why it is alive."
    details = (
        "ADDRESS is any gdb expression inside a chunk.  Referrers: registers, stack slots (thread,\n"
        "frame, offset from the frame's CFA), globals (symbol+offset), TLS, anonymous mappings and\n"
        "other chunks (used ones; words in free chunks are listed apart as stale: a dangling\n"
        "pointer).  --path prints one shortest chain from a root to the chunk, as heapleaks\n"
        "computes reachability; on a leaked chunk it says that no root reaches it."
    )

    def add_arguments(self, p):
        p.add_argument("address", metavar="ADDRESS", type=expression, help="an address expression")
        p.add_argument("--path", action="store_true", help="one shortest chain from a root")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        expression = args.address.strip()
        target = Target()
        address = evaluate_address(expression)
        L = leaks()
        inputs = L.leak_inputs(target)
        view = inputs.view
        c = view.state.chunk_at(address)
        if c is None:
            header = chunk_views.in_no_chunk(view, address)
            if header:
                raise UserError(f"{address:#x} is in no chunk: it is in {header}")
            r = region_at(regions(target), address)
            where = r.describe() if r is not None else "unmapped memory"
            raise UserError(f"{address:#x} is in no heap chunk ({where}); 'vmmap {address:#x}' says more")
        hdr = view.layout.chunk_hdr_sz
        nodes = inputs.nodes
        user = c.address + hdr
        i = nodes.find(user)
        hi = (
            nodes.end[i]
            if i >= 0
            else c.address + c.size + (0 if c.state_name == "mmapped" else view.layout.size_sz)
        )
        state = c.state_name
        tcaches = {t.address - hdr for t in view.state.tcache.values() if t.address}
        if c.address in tcaches:
            state = "tcache_perthread_struct"
        _, root_hits, heap_hits, skipped = L.find_referrers(target, user, hi)
        refs = [self._root_ref(L, hit, k < MAX_NAMED) for k, hit in enumerate(root_hits)]
        for a, v in heap_hits:
            ref = self._heap_ref(view, nodes, tcaches, a, v)
            if ref is not None:
                refs.append(ref)
        path = None
        if args.path:
            path = self._path(L, target, view, i)
        tj = {**target_json(target), **leak_views.target_json(c, user, state)}
        if args.json:
            body = leak_views.refs_document(view, tj, refs, path, args.path, skipped)
            out.json(jsonout.document("heaprefs", tj, **body))
            return
        out.emit(leak_views.refs_text(view, tj, refs, path, args.path, skipped))

    @staticmethod
    def _root_ref(L, hit, named: bool) -> leak_views.Ref:
        root, a, v = hit
        if isinstance(root, Register):
            return leak_views.Ref(
                None,
                v,
                "register",
                thread=root.thread,
                register=root.name,
                label=f"thread {root.thread} register {root.name}",
            )
        ref = leak_views.Ref(a, v, root.kind, thread=root.thread, label=root.label)
        if root.kind == "stack" and named:
            f = frame_at(root.thread, a, root.end)  # root.end: the stack's high end
            if f is not None:
                ref.frame = f[0]
                ref.offset = f[2]
                ref.label = f"thread {root.thread} frame #{f[0]} {f[1]}, CFA{f[2]:+#x}"
        elif root.kind in ("static", "tls") and named:
            name = L.symbol_at(a)
            if name:
                ref.label = f"{name} ({root.label})"
        elif root.kind == "anon":
            ref.label = f"anonymous mapping, {a - root.start:#x} into its scanned part at {root.start:#x}"
        return ref

    @staticmethod
    def _heap_ref(view, nodes, tcaches, a: int, v: int):
        hdr = view.layout.chunk_hdr_sz
        j = nodes.find(a)
        if j >= 0:
            ch = nodes.chunk[j]
            return leak_views.Ref(
                a,
                v,
                "chunk",
                chunk=ch,
                offset=a - nodes.start[j],
                label=f"chunk {ch:#x} (used) +{a - nodes.start[j]:#x}",
            )
        c = view.state.chunk_at(a)
        if c is None or a < c.address + hdr or c.address in tcaches or c.state_name in ("used", "mmapped"):
            return None  # a header, malloc's own (a tcache, an arena), or a node's padding
        off = a - (c.address + hdr)
        return leak_views.Ref(
            a,
            v,
            "free-chunk",
            chunk=c.address,
            offset=off,
            label=f"chunk {c.address:#x} ({c.state_name}) +{off:#x}, stale",
        )

    def _path(self, L, target, view, i: int):
        if i < 0:
            return None
        _, reach = L.reachability(target)
        got = reach.path(i)
        if got is None:
            return None
        how, chain = got
        n = reach.nodes
        if how is None:  # a memory root: the first whose words point into the chain's first node
            how = L.root_for(target, n.start[chain[0]], n.end[chain[0]])
            if how is None:
                return None
        root, a = how
        first = self._root_ref(L, (root, a, 0), True)
        steps = [{"address": first.address, "kind": first.kind, "label": first.label}]
        for j in chain:
            steps.append(
                {
                    "address": n.chunk[j],
                    "kind": "chunk",
                    "label": f"(user {n.start[j]:#x}, size {n.size[j]:#x})",
                }
            )
        return steps


COMMANDS = (HeapRefs,)
