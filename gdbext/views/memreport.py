"""memreport --html: one self-contained HTML page (no network, no external scripts) with the
memory map, each arena's heaps and the mmapped chunks, heapstat's numbers and the thread
stacks, to attach to a bug report.

The page is drawn from the same objects as the tables (Regions, the heap model, heapstat's
Usage, StackRows). Up to CHUNK_CAP chunks each get an element with `chunk`'s own lines as its
tooltip; past that, each heap is drawn as CELLS cells of equal bytes, each holding its bytes per
state, so the page stays light at a million chunks. The zoom widens the strips (a scrolled
view); `#zoom=N` in the page's address sets it on load."""

import json
import math
from bisect import bisect_left
from html import escape
from typing import Dict, List, Optional

from ..model.ptmalloc.chunkinfo import free_links
from ..model.ptmalloc.chunks import STATES
from ..render import fmt
from ..render.table import Table
from . import plain_text
from .chunk import ChunkFacts, fact_items
from .heapstat import document_body as heapstat_body
from .heapstat import text as heapstat_text

CHUNK_CAP = 20000  # chunks drawn one element each; above it, aggregated cells
CELLS = 1024  # cells per heap when aggregated

_COLOURS = {
    "used": "#4e79a7",
    "tcache": "#f28e2b",
    "fastbin": "#e15759",
    "unsorted": "#76b7b2",
    "smallbin": "#59a14f",
    "largebin": "#edc948",
    "top": "#bab0ac",
    "mmapped": "#b07aa1",
    "corrupt": "#000000",
    "fencepost": "#9c755f",
}
_CLASS_COLOURS = {
    "static": "#4e79a7",
    "automatic": "#59a14f",
    "dynamic": "#f28e2b",
    "reserved": "#bab0ac",
    "kernel": "#b07aa1",
    "file": "#76b7b2",
}

_STYLE = """
body{font:13px sans-serif;margin:1em}
.map,.strip{display:flex;flex-wrap:nowrap;width:100%;height:40px;border:1px solid #888}
.region{overflow:hidden;white-space:nowrap;font-size:10px;border-right:1px solid #fff;min-width:2px}
.strip span{display:block;height:100%;min-width:1px}
[data-mmapped] span{border-right:2px solid #fff}
.mixed{outline:1px dotted #000;outline-offset:-1px}
#zoomer{overflow-x:auto;width:100%}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
.legend span{display:inline-block;padding:0 6px;margin:2px;color:#fff}
"""

_SCRIPT = """
(function(){
  var z=document.getElementById('zoom');
  if(z){
    var m=/zoom=(\\d+)/.exec(location.hash);
    if(m){z.value=m[1];}
    var apply=function(){document.querySelectorAll('.strip').forEach(function(s){
      s.style.width=(100*Number(z.value))+'%';});
      document.body.setAttribute('data-zoom',z.value);};
    z.addEventListener('input',apply);apply();
  }
  document.body.setAttribute('data-ready','1');
})();
"""


def _h(x) -> str:
    return escape(str(x), quote=True)


def _legend(colours: Dict[str, str]) -> str:
    return '<div class="legend">%s</div>' % "".join(
        '<span style="background:%s">%s</span>' % (c, _h(k)) for k, c in colours.items()
    )


def html(
    regions,
    heap,
    stacks,
    usage=None,
    stack_usage=None,
    title: str = "",
    cap: int = CHUNK_CAP,
    cells: int = CELLS,
    pointer_size: int = 8,
) -> str:
    """The page as one string; `heap` (the heap view) None when there is no heap model, `usage`
    (heapstat's Usage and its stacks' figures) None when heapstat could not be computed;
    addresses as wide as the inferior's pointers."""
    addr = fmt.address_of(pointer_size)
    parts: List[str] = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>gdbext memreport</title>",
        "<style>%s</style></head><body>" % _STYLE,
        "<h1>gdbext memreport</h1><p>%s</p>" % _h(title),
    ]
    parts.append(_map(regions, addr))
    parts.append(_heaps(heap, cap, cells, addr))
    parts.append(_heapstat(heap, usage, stack_usage))
    parts.append(_stacks(stacks, addr))
    parts.append("<script>%s</script></body></html>" % _SCRIPT)
    return "".join(parts)


def _map(regions, addr) -> str:
    out = [
        '<section id="map"><h2>Memory map</h2><p>%s, in address order; width grows with the '
        "logarithm of the size</p>" % _h(fmt.plural(len(regions), "region"))
    ]
    out.append(_legend(_CLASS_COLOURS))
    out.append('<div class="map">')
    for r in regions:
        label = r.label or r.path or r.kind
        tip = "%s-%s %s %s %s %s" % (
            addr(r.start),
            addr(r.end),
            fmt.size(r.size),
            r.perms,
            r.kind,
            label,
        )
        out.append(
            '<div class="region" data-kind="%s" data-start="%d" data-end="%d" title="%s" '
            'style="flex-grow:%.2f;background:%s">%s</div>'
            % (
                _h(r.kind),
                r.start,
                r.end,
                _h(tip),
                max(1.0, math.log2(max(r.size, 2)) - 11),
                _CLASS_COLOURS.get(r.cls, "#ccc"),
                _h(r.kind),
            )
        )
    out.append("</div></section>")
    return "".join(out)


def _heaps(heap, cap: int, cells: int, addr) -> str:
    out = ['<section id="heaps"><h2>Heaps</h2>']
    if heap is None:
        out.append("<p>no glibc heap model</p></section>")
        return "".join(out)
    state = heap.state
    total = sum(len(s) for a in state.arenas for s in a.heaps) + len(state.mmapped)
    each = total <= cap
    tips = _Tips(heap) if each else None
    out.append(
        "<p>%s; %s. Zoom <input id='zoom' type='range' min='1' max='64' value='1'></p>"
        % (
            _h(fmt.plural(total, "chunk")),
            "one element per chunk, its facts as a tooltip"
            if each
            else "more than %d, so each heap is %d cells of equal bytes, each with its bytes per state"
            % (cap, cells),
        )
    )
    out.append(_legend(_COLOURS))
    out.append('<div id="zoomer">')
    for n, a in enumerate(state.arenas):
        for seg in a.heaps:
            out.append(
                "<h3>arena %d %s heap %s-%s</h3>"
                % (n, "(main_arena)" if a.main else "", _h(addr(seg.start)), _h(addr(seg.end)))
            )
            out.append(
                '<div class="strip" data-arena="%d" data-chunks="%d" data-aggregated="%d">'
                % (a.address, len(seg), 0 if each else 1)
            )
            out.append(_chunks(seg, tips) if tips is not None else _cells(seg, cells, addr))
            out.append("</div>")
    if state.mmapped:
        out.append(
            "<h3>mmapped chunks (%d, outside the heaps; width grows with the logarithm of the size)</h3>"
            % len(state.mmapped)
        )
        out.append('<div class="strip" data-mmapped="1" data-chunks="%d">' % len(state.mmapped))
        out.append(_mmapped(heap, tips, addr))
        out.append("</div>")
    out.append("</div></section>")
    return "".join(out)


class _Tips:
    """`chunk`'s lines for each chunk drawn, with what they need looked up once per page (the
    problems by address, the tcache that holds each chunk) rather than once per chunk."""

    def __init__(self, heap):
        self.heap = heap
        state = heap.state
        self.problems = sorted(state.problems, key=lambda p: p.address)
        self.paddr = [p.address for p in self.problems]
        self.owner: Dict[int, object] = {}
        for t in state.tcache.values():
            for b in t.bins:
                for c in b.chunks:
                    self.owner.setdefault(c, t.label)

    def text(self, c, seg, arena, mm=None) -> str:
        heap, L = self.heap, self.heap.layout
        end = max(c.end, c.address + L.chunk_hdr_sz)
        lo, hi = bisect_left(self.paddr, c.address), bisect_left(self.paddr, end)
        owner = self.owner.get(c.address) if c.bin and c.bin.startswith("tcache") else None
        f = ChunkFacts(
            c,
            None,
            None,
            seg,
            arena,
            self.problems[lo:hi],
            free_links(heap.state.memory, L, c),
            owner,
            mm,
            end,
        )
        return plain_text(fact_items(heap, f, c.address, hex(c.address), neighbours=False)).rstrip()


def _chunks(seg, tips: _Tips) -> str:
    out = []
    arena = tips.heap.state.arena_of(seg.arena)
    for i in range(len(seg)):
        c = seg.chunk(i)
        st = STATES[c.state]
        out.append(
            '<span class="chunk" data-state="%s" data-size="%d" title="%s" '
            'style="flex-grow:%d;background:%s"></span>'
            % (
                st,
                c.end - c.address,
                _h(tips.text(c, seg, arena)),
                max(1, c.end - c.address),
                _COLOURS.get(st, "#ccc"),
            )
        )
    return "".join(out)


def _mmapped(heap, tips: Optional[_Tips], addr) -> str:
    """One element per mmapped chunk (their number is bounded by mp_.n_mmaps_max), with its
    facts when the page is under the cap, its address and size when not."""
    out = []
    state = heap.state
    for m in sorted(state.mmapped, key=lambda m: m.address):
        c = state.chunk_at(m.address) if tips is not None else None
        if c is not None and tips is not None:
            tip = tips.text(c, None, None, m)
        else:
            tip = "chunk %s size %#x mmapped, mapping %s, %s" % (
                addr(m.address),
                m.size,
                addr(m.mapping_start),
                fmt.size(m.mapping_size),
            )
        out.append(
            '<span class="chunk" data-state="mmapped" data-size="%d" title="%s" '
            'style="flex-grow:%.2f;background:%s"></span>'
            % (m.size, _h(tip), max(1.0, math.log2(max(m.size, 2)) - 11), _COLOURS["mmapped"])
        )
    return "".join(out)


def _heapstat(heap, usage, stack_usage) -> str:
    """heapstat's tables and lines as they read at the prompt, and its --json document for a
    script (in a script element of type application/json, which the browser does not run)."""
    out = ['<section id="heapstat"><h2>heapstat</h2>']
    if heap is None or usage is None:
        out.append("<p>no heapstat numbers (no glibc heap model)</p></section>")
        return "".join(out)
    items = list(heapstat_text(heap, usage, stack_usage))
    out.append(_items_html(items))
    doc = json.dumps(heapstat_body(heap, usage, stack_usage), separators=(",", ":"))
    out.append(
        '<script type="application/json" id="heapstat-json">%s</script>'
        % doc.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )
    out.append("</section>")
    return "".join(out)


def _items_html(items) -> str:
    """Output items (lines, tables, raw text) as HTML: a table per Table, a paragraph per line."""
    out = []
    for item in items:
        if isinstance(item, Table):
            out.append(
                '<table class="stat"><tr>%s</tr>' % "".join("<th>%s</th>" % _h(h) for h in item.headers)
            )
            for row in item.rows:
                out.append("<tr>%s</tr>" % "".join("<td>%s</td>" % _h(t) for t, _ in row))
            out.append("</table>")
        elif isinstance(item, str):
            out.append("<pre>%s</pre>" % _h(item))
        else:
            out.append("<p>%s</p>" % _h("".join(t for t, _ in item)))
    return "".join(out)


def _cells(seg, cells: int, addr) -> str:
    span = max(1, seg.end - seg.start)
    acc: List[Dict[int, int]] = [dict() for _ in range(cells)]
    addrs, states = seg.addrs, seg.states
    for i in range(len(addrs)):
        k = (addrs[i] - seg.start) * cells // span
        if 0 <= k < cells:
            d = acc[k]
            size = seg.chunk_end(i) - addrs[i]
            d[states[i]] = d.get(states[i], 0) + size
    out = []
    step = span / cells
    for k, d in enumerate(acc):
        if not d:
            out.append('<span class="cell" style="flex-grow:1"></span>')
            continue
        top = max(d, key=lambda s: d[s])
        tip = "%s: " % addr(int(seg.start + k * step)) + ", ".join(
            "%s %s" % (STATES[s], fmt.size(b)) for s, b in sorted(d.items())
        )
        out.append(
            '<span class="cell%s" data-bytes="%s" title="%s" style="flex-grow:1;background:%s"></span>'
            % (
                " mixed" if len(d) > 1 else "",
                _h(",".join("%s:%d" % (STATES[s], b) for s, b in d.items())),
                _h(tip),
                _COLOURS.get(STATES[top], "#ccc"),
            )
        )
    return "".join(out)


def _stacks(stacks, addr) -> str:
    out = [
        '<section id="threads"><h2>Thread stacks</h2><table><tr><th>thread</th><th>tid</th>'
        "<th>name</th><th>low</th><th>high</th><th>guard</th><th>sp</th><th>used</th></tr>"
    ]
    for r in stacks:

        def a(v: Optional[int]) -> str:
            return str(addr(v)) if v is not None else "?"

        guard = "%s-%s" % (a(r.guard_low), a(r.guard_high)) if r.guard_low is not None else "none"
        out.append(
            ('<tr class="thread">' + "<td>%s</td>" * 8 + "</tr>")
            % (
                r.num,
                r.tid,
                _h(r.name),
                a(r.low),
                a(r.high),
                guard,
                a(r.sp),
                _h(fmt.size(r.used)) if r.used is not None else "?",
            )
        )
    out.append("</table></section>")
    return "".join(out)
