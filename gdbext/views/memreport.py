"""memreport --html: one self-contained HTML page (no network, no external scripts) with the
memory map, each arena's heaps and the mmapped chunks, heapstat's numbers and the thread
stacks, to attach to a bug report.

The page is drawn from the same objects as the tables (Regions, the heap model, heapstat's
Usage, StackRows). Up to CHUNK_CAP chunks each get an element with `chunk`'s own lines as its
tooltip; past that, each heap is drawn as CELLS cells of equal bytes, each holding its bytes per
state, so the page stays light at a million chunks. The zoom widens the strips (a scrolled
view); `#zoom=N` in the page's address sets it on load."""

import base64
import json
import math
import sys
from array import array
from bisect import bisect_left
from html import escape
from typing import Dict, List, Optional

from ..model.ptmalloc.chunkinfo import free_links
from ..model.ptmalloc.chunks import STATES
from ..render import fmt
from ..render.escape import printable_lines
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
.map,.strip{display:flex;flex-wrap:nowrap;width:100%;height:40px;border:1px solid #888;box-sizing:border-box}
.region{overflow:hidden;white-space:nowrap;font-size:10px;border-right:1px solid #fff;min-width:2px}
.strip span{display:block;height:100%;min-width:1px}
[data-mmapped] span{border-right:2px solid #fff}
.mixed{box-shadow:inset 0 4px 0 rgba(0,0,0,.45)}
#zoomer{overflow-x:auto;width:100%}
.zoomview canvas{width:100%;height:48px;border:1px solid #888;box-sizing:border-box;cursor:crosshair}
.strip[data-aggregated=\"1\"]{cursor:zoom-in}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
.legend span{display:inline-block;padding:0 6px;margin:2px;color:#fff}
"""

# The page's one script: the zoom slider; for a heap drawn as cells, a canvas that draws the
# chunks of any address range from the heap's chunk data (decoded on first use), so the page
# holds no element per chunk however many there are.
_SCRIPT = r"""
(function(){
  var COL=__COLOURS__, NAMES=__NAMES__;
  var z=document.getElementById('zoom');
  if(z){
    var m=/zoom=(\d+)/.exec(location.hash);
    if(m){z.value=m[1];}
    var apply=function(){document.querySelectorAll('.strip').forEach(function(s){
      s.style.width=(100*Number(z.value))+'%';});
      document.body.setAttribute('data-zoom',z.value);};
    z.addEventListener('input',apply);apply();
  }
  function hex(x){return '0x'+x.toString(16);}
  var data={}, views={};
  function chunks(h){
    if(data[h]){return data[h];}
    var el=document.querySelector('script.chunkdata[data-heap="'+h+'"]');
    var bin=atob(el.textContent.trim()), n=Number(el.dataset.n), unit=Number(el.dataset.unit);
    var u8=new Uint8Array(bin.length);
    for(var i=0;i<bin.length;i++){u8[i]=bin.charCodeAt(i);}
    var dv=new DataView(u8.buffer), off=new Float64Array(n+1);
    for(var j=0;j<n;j++){off[j+1]=off[j]+dv.getUint32(4*j,true)*unit;}
    data[h]={n:n,first:Number(el.dataset.first),off:off,st:u8.subarray(4*n,5*n)};
    return data[h];
  }
  function find(d,o){
    var lo=0,hi=d.n-1;
    while(lo<hi){var mid=(lo+hi+1)>>1;if(d.off[mid]<=o){lo=mid;}else{hi=mid-1;}}
    return lo;
  }
  function box(h){return document.querySelector('.zoomview[data-heap="'+h+'"]');}
  function draw(h){
    var t0=performance.now(), d=chunks(h), b=box(h), cv=b.querySelector('canvas');
    var ctx=cv.getContext('2d'), W=cv.width, H=cv.height, v=views[h];
    var lo=v.lo-d.first, hi=v.hi-d.first, scale=W/(hi-lo), count=0, px=-1, acc=null;
    ctx.clearRect(0,0,W,H);
    function flush(){
      if(!acc){return;}
      var best=0,bb=-1;
      for(var k in acc){if(acc[k]>bb){bb=acc[k];best=k;}}
      ctx.fillStyle=COL[best];ctx.fillRect(px,0,1,H);acc=null;
    }
    for(var i=find(d,Math.max(0,lo));i<d.n&&d.off[i]<hi;i++){
      if(d.off[i+1]<=lo){continue;}
      count++;
      var x0=(d.off[i]-lo)*scale, x1=(d.off[i+1]-lo)*scale;
      if(x1-x0>=1){
        flush();ctx.fillStyle=COL[d.st[i]];ctx.fillRect(x0,0,x1-x0,H);
        if(x1-x0>=4){ctx.fillStyle='#fff';ctx.fillRect(x1-1,0,1,H);}
      }else{
        var p=Math.floor(Math.max(0,x0));
        if(p!==px||!acc){flush();px=p;acc={};}
        acc[d.st[i]]=(acc[d.st[i]]||0)+(d.off[i+1]-d.off[i]);
      }
    }
    flush();
    b.dataset.lo=hex(v.lo);b.dataset.hi=hex(v.hi);b.dataset.visible=count;
    b.dataset.ms=Math.round(performance.now()-t0);
    b.querySelector('.zoominfo').textContent=hex(v.lo)+'-'+hex(v.hi)+': '+count+
      ' chunks. Wheel: zoom; drag: pan; hover: a chunk.';
  }
  function open(h,lo,hi){
    var d=chunks(h), end=d.first+d.off[d.n];
    lo=Math.max(d.first,lo);hi=Math.min(end,Math.max(hi,lo+64));
    views[h]={lo:lo,hi:hi,first:d.first,end:end};box(h).hidden=false;draw(h);
  }
  document.querySelectorAll('.strip[data-aggregated="1"]').forEach(function(s){
    s.addEventListener('click',function(e){
      var k=Array.prototype.indexOf.call(s.children,e.target);
      if(k<0){return;}
      var a=Number(s.dataset.start), step=(Number(s.dataset.end)-a)/s.children.length;
      open(s.dataset.heap,a+k*step,a+(k+1)*step);
    });
  });
  document.querySelectorAll('.zoomview').forEach(function(b){
    var h=b.dataset.heap, cv=b.querySelector('canvas'), drag=null;
    function at(e){var v=views[h];return v.lo+(e.offsetX/cv.clientWidth)*(v.hi-v.lo);}
    cv.addEventListener('wheel',function(e){
      e.preventDefault();
      var v=views[h], x=e.offsetX/cv.clientWidth, o=at(e);
      var span=Math.min(v.end-v.first,Math.max(64,(v.hi-v.lo)*(e.deltaY<0?1/1.5:1.5)));
      v.lo=Math.max(v.first,Math.min(v.end-span,o-x*span));v.hi=v.lo+span;draw(h);
    });
    cv.addEventListener('mousedown',function(e){drag={x:e.offsetX,lo:views[h].lo};});
    window.addEventListener('mouseup',function(){drag=null;});
    cv.addEventListener('mousemove',function(e){
      var v=views[h], d=chunks(h);
      if(drag){
        var span=v.hi-v.lo, lo=drag.lo-(e.offsetX-drag.x)/cv.clientWidth*span;
        v.lo=Math.max(v.first,Math.min(v.end-span,lo));v.hi=v.lo+span;draw(h);return;
      }
      var i=find(d,at(e)-d.first);
      cv.title='chunk '+hex(d.first+d.off[i])+' size '+hex(d.off[i+1]-d.off[i])+' '+NAMES[d.st[i]];
    });
    b.querySelector('.zoomout').addEventListener('click',function(){
      var v=views[h], mid=(v.lo+v.hi)/2, span=Math.min(v.end-v.first,(v.hi-v.lo)*4);
      v.lo=Math.max(v.first,Math.min(v.end-span,mid-span/2));v.hi=v.lo+span;draw(h);
    });
    b.querySelector('.zoomclose').addEventListener('click',function(){b.hidden=true;});
  });
  var q=/heap=(\d+)&from=(0x[0-9a-f]+)&to=(0x[0-9a-f]+)/.exec(location.hash);
  if(q&&box(q[1])){open(q[1],parseInt(q[2],16),parseInt(q[3],16));}
  document.body.setAttribute('data-ready','1');
})();
""".replace("__COLOURS__", json.dumps([_COLOURS.get(s, "#ccc") for s in STATES])).replace(
    "__NAMES__", json.dumps(list(STATES))
)


def _h(x) -> str:
    """HTML text, with the control characters a name from the inferior may hold written as
    \\xHH (an ESC or BEL would reach a terminal that shows the file)."""
    return escape(printable_lines(str(x)), quote=True)


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
            else "more than %d, so each heap is %d cells of equal bytes, each with its bytes per state; "
            "click a cell to see its chunks" % (cap, cells),
        )
    )
    out.append(_legend(_COLOURS))
    out.append('<div id="zoomer">')
    hnum = -1
    for n, a in enumerate(state.arenas):
        for seg in a.heaps:
            out.append(
                "<h3>arena %d %s heap %s-%s</h3>"
                % (n, "(main_arena)" if a.main else "", _h(addr(seg.start)), _h(addr(seg.end)))
            )
            hnum += 1
            out.append(
                '<div class="strip" data-arena="%d" data-chunks="%d" data-aggregated="%d" data-heap="%d" '
                'data-start="%d" data-end="%d">'
                % (a.address, len(seg), 0 if each else 1, hnum, seg.start, seg.end)
            )
            out.append(_chunks(seg, tips) if tips is not None else _cells(seg, cells, addr))
            out.append("</div>")
            if tips is None and len(seg):
                out.append(_zoom_view(seg, hnum))
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


def _zoom_view(seg, hnum: int) -> str:
    """A hidden canvas for the chunks of any range of one heap, and the heap's chunks as data
    for it: each chunk's bytes to the next (little-endian uint32, in units of `unit`), then
    each chunk's state (a byte, chunks.STATES' order), base64."""
    n = len(seg)
    addrs = seg.addrs
    spans = [addrs[i + 1] - addrs[i] for i in range(n - 1)]
    spans.append(seg.chunk_end(n - 1) - addrs[n - 1])
    unit = 8 if all(x % 8 == 0 for x in spans) else 1
    words = array("I", (min(x // unit, 0xFFFFFFFF) for x in spans))
    if sys.byteorder != "little":
        words.byteswap()
    blob = base64.b64encode(words.tobytes() + bytes(seg.states[:n])).decode("ascii")
    return (
        '<div class="zoomview" data-heap="%d" hidden><canvas width="1200" height="48"></canvas>'
        '<p><span class="zoominfo"></span> <button class="zoomout">zoom out</button> '
        '<button class="zoomclose">close</button></p></div>'
        '<script type="application/octet-stream" class="chunkdata" data-heap="%d" data-n="%d" '
        'data-unit="%d" data-first="%d">%s</script>' % (hnum, hnum, n, unit, addrs[0], blob)
    )


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
        why = "no glibc heap model" if heap is None else "heapstat could not be computed"
        out.append("<p>no heapstat numbers (%s)</p></section>" % why)
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
