"""The reachability scan (model/leaks.py) over bytes, without gdb: hand-made graphs, the word
filter against a plain loop, and random graphs against a search written here."""

import struct

from hypothesis import given, settings, strategies as st

from gdbext.model.leaks import Nodes, Register, Root, scan, word_hits, referrers

HEAP = 0x5555_5555_0000
ROOT = 0x7FFF_0000_0000


def nodes_of(sizes):
    """Nodes laid out back to back from HEAP, as chunks with a 16-byte header."""
    n = Nodes()
    a = HEAP
    for s in sizes:
        n.chunk.append(a)
        n.start.append(a + 16)
        n.end.append(a + s + 8)
        n.size.append(s)
        n.arena.append(0x1000)
        n.uncertain.append(0)
        a += s
    return n


def heap_bytes(nodes, words):
    """The heap's memory: {address: value} written, zeros elsewhere."""
    size = nodes.end[-1] - HEAP
    buf = bytearray(size)
    for address, value in words.items():
        struct.pack_into("<Q", buf, address - HEAP, value)
    return bytes(buf)


def root_block(values):
    return (Root("static", ROOT, ROOT + 8 * len(values), "g"), ROOT, struct.pack(f"<{len(values)}Q", *values))


def test_chain_cycle_interior_and_free_words():
    n = nodes_of([0x30] * 6)
    s = n.start
    words = {
        s[0]: s[1] + 8,  # 0 -> 1 (interior)
        s[1]: s[2],  # 1 -> 2
        s[3]: s[4],  # 3 <-> 4: a cycle nobody enters
        s[4]: s[3],
        n.chunk[5] + 8: s[5],  # 5's own size field: a header, no edge
    }
    got = scan(n, [Register(1, "rbx", 0)], [root_block([s[0], 7, 0])], [(HEAP, heap_bytes(n, words))])
    assert list(got.reachable) == [1, 1, 1, 0, 0, 0]
    assert got.leaked() == [3, 4, 5]
    assert [got.referenced[i] for i in (3, 4, 5)] == [1, 1, 0]
    assert got.reaches([3, 4, 5]) == {3: 1, 4: 1, 5: 0}
    how, chain = got.path(2)
    assert (how, chain) == (None, [0, 1, 2])  # a memory root: the caller finds which
    assert got.path(3) is None
    assert got.root_bytes["static"] == 24


def test_a_register_is_a_root_and_the_last_word_of_a_chunk_is_its_own():
    n = nodes_of([0x20, 0x20])
    # chunk 0's user memory runs to chunk 1's prev_size field (chunk 1's address + 8)
    words = {n.chunk[1]: n.start[1]}
    got = scan(n, [Register(2, "r12", n.start[0] + 3)], [], [(HEAP, heap_bytes(n, words))])
    assert list(got.reachable) == [1, 1]
    assert got.root_of[0][0].name == "r12"


def test_referrers_lists_roots_and_heap_words():
    n = nodes_of([0x30, 0x30])
    words = {n.start[0] + 8: n.start[1]}
    roots, heap = referrers(
        n.start[1], n.end[1], [Register(1, "rax", n.start[1])], [root_block([0, n.start[1] + 4])],
        [(HEAP, heap_bytes(n, words))],
    )
    assert [(type(r).__name__, a) for r, a, _ in roots] == [("Register", None), ("Root", ROOT + 8)]
    assert heap == [(n.start[0] + 8, n.start[1])]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, (1 << 64) - 1), max_size=64),
    st.lists(st.tuples(st.integers(0, 1 << 48), st.integers(1, 1 << 36)), min_size=1, max_size=4),
    st.integers(0, 15),
)
def test_word_hits_finds_what_a_plain_loop_finds(values, spans, shift):
    spans = sorted((lo, lo + n) for lo, n in spans)
    # some values inside the spans, so that there is something to find
    values = values + [lo + (v % (hi - lo)) for (lo, hi), v in zip(spans, values)]
    data = bytes(shift) + struct.pack(f"<{len(values)}Q", *values)
    base = 0x1000 - shift
    want = set()
    for k in range(len(data) - 7):
        if (base + k) % 8 == 0:
            v = int.from_bytes(data[k : k + 8], "little")
            if any(lo <= v < hi for lo, hi in spans):
                want.add((base + k, v))
    assert set(word_hits(data, base, spans)) == want


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_graphs_match_a_search(data):
    count = data.draw(st.integers(1, 40))
    sizes = [data.draw(st.sampled_from([0x20, 0x30, 0x50])) for _ in range(count)]
    n = nodes_of(sizes)
    edges = {i: data.draw(st.lists(st.integers(0, count - 1), max_size=3)) for i in range(count)}
    roots = data.draw(st.lists(st.integers(0, count - 1), max_size=4))
    words = {}
    for i, outs in edges.items():
        for k, j in enumerate(outs[: (sizes[i] - 8) // 8 - 1]):
            words[n.start[i] + 8 * k] = n.start[j] + data.draw(st.sampled_from([0, 8]))
    seen, todo = set(roots), list(roots)
    while todo:
        i = todo.pop()
        for j in [j for k, j in enumerate(edges[i][: (sizes[i] - 8) // 8 - 1])]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    got = scan(n, [], [root_block([n.start[r] for r in roots])] if roots else [], [(HEAP, heap_bytes(n, words))])
    assert set(got.leaked()) == set(range(count)) - seen


def test_what_unwalked_memory_points_at_is_doubtful_not_leaked():
    n = nodes_of([0x30] * 3)
    words = {n.start[1]: n.start[2]}  # 1 -> 2; only unwalked memory points at 1
    unwalked = struct.pack("<2Q", 0, n.start[1])
    got = scan(n, [], [], [(HEAP, heap_bytes(n, words))], [(0x6000_0000_0000, unwalked)])
    assert got.leaked() == [0, 1, 2]
    assert list(got.doubtful) == [0, 1, 1]


def test_no_nodes_no_work():
    got = scan(Nodes(), [Register(1, "rax", HEAP)], [root_block([HEAP])], [])
    assert got.leaked() == [] and got.root_bytes["static"] == 8


class _Memory:
    def __init__(self, base, data):
        self.base, self.data = base, data

    def read(self, address, size):
        off = address - self.base
        if off < 0 or off + size > len(self.data):
            raise ValueError("unreadable")
        return self.data[off : off + size]


def test_views_put_unreferenced_heads_first_and_read_first_words_in_bulk():
    from gdbext.views import leaks as V

    n = nodes_of([0x30] * 4)
    s = n.start
    words = {s[1]: s[2], s[3]: 0x4142}  # 1 -> 2; nothing reaches 1, 2, 3; 0 is a root's
    heap = heap_bytes(n, words)
    got = scan(n, [], [root_block([s[0]])], [(HEAP, heap)])
    leaked, unknown = V.split(got)
    assert (leaked, unknown) == ([1, 2, 3], [])
    firsts = V.first_words(_Memory(HEAP, heap), n, leaked)
    assert firsts[3][:8] == (0x4142).to_bytes(8, "little") and firsts[1][:8] == s[2].to_bytes(8, "little")
    rows = V.rows(got, leaked, firsts, {s[2]: "sig"}, None)
    assert [(r.node, r.unreferenced, r.reaches) for r in rows] == [(1, True, 1), (3, True, 0), (2, False, 0)]
    assert rows[0].signature == "sig"
    t = V.totals(got, leaked, unknown)
    assert (t["used"], t["reachable"], t["leaked"], t["unreferenced"]) == (4, 1, 3, 2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, (1 << 64) - 1), max_size=64),
    st.integers(0x1000, 1 << 47),
    st.integers(1, 1 << 16),
    st.integers(0, 15),
    st.integers(0, 7),
)
def test_word_hits_on_a_small_span_finds_what_a_plain_loop_finds(values, lo, n, shift, tail):
    """The bytes.find path (one span of at most two 64 KiB granules), with values inside the
    span, just outside it, and the span's upper bytes planted at misaligned places."""
    hi = lo + n
    values = values + [lo + (v % n) for v in values[:8]] + [lo, hi - 1, hi, lo - 1]
    packed = struct.pack(f"<{len(values)}Q", *values)
    data = bytes(shift) + packed + packed[3 : 3 + 8] + bytes(tail) + lo.to_bytes(8, "little")[: 8 - tail % 8]
    base = 0x1000 - shift
    want = []
    for k in range(len(data) - 7):
        if (base + k) % 8 == 0:
            v = int.from_bytes(data[k : k + 8], "little")
            if lo <= v < hi:
                want.append((base + k, v))
    assert list(word_hits(data, base, [(lo, hi)])) == want


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_root_values_resolve_the_same_by_cells_by_set_and_by_find(data):
    """The two ways scan() turns root words into nodes (a cell map per heap, or one set of
    values when no cell map fits) agree with a plain find() per word: starts, interior
    pointers, headers, unaligned values, junk around the heap."""
    from gdbext.model import leaks as M

    sizes = data.draw(st.lists(st.sampled_from([0x20, 0x30, 0x50, 0x1000]), min_size=1, max_size=30))
    n = nodes_of(sizes)
    lo, hi = HEAP - 0x100, n.end[-1] + 0x100
    values = data.draw(st.lists(st.integers(lo, hi), max_size=80))
    values += [n.start[data.draw(st.integers(0, len(n) - 1))] for _ in range(5)]
    values += data.draw(st.lists(st.integers(0, (1 << 64) - 1), max_size=5))
    want = {i for i in map(n.find, values) if i >= 0}
    spans = n.merged_spans()
    grans = M.granules(spans)
    assert M._cells_fit(n, spans)
    by_cells = M._root_nodes_by_cells(n, spans, [root_block(values)], grans, {})
    by_set = M._root_nodes_by_set(n, [root_block(values)], grans, {})
    assert by_cells == want == by_set


def test_index_from_on_a_python_whose_array_index_takes_no_start():
    """Python 3.9 (bullseye's gdb) has no start argument to array.index: --path failed there
    with an internal error."""
    import array as array_module

    from gdbext.model.leaks import _index_from

    class Old(array_module.array):
        def index(self, value, *start):
            if start:
                raise TypeError("array.index() takes exactly one argument (2 given)")
            return super().index(value)

    a = Old("q", [5, 1, 5, 2, 5])
    assert [_index_from(a, 5, k) for k in (0, 1, 3)] == [0, 2, 4]
    assert _index_from(array_module.array("q", [5, 1, 5]), 5, 1) == 2


def _both_ways(run):
    """run() with numpy's scan (when numpy is installed) and with the pure-Python one."""
    import os

    from gdbext.model import leaks_numpy

    old = os.environ.get("GDBEXT_NUMPY")
    try:
        os.environ["GDBEXT_NUMPY"] = "0"
        plain = run()
        if leaks_numpy.np is None:
            return plain, None
        os.environ["GDBEXT_NUMPY"] = "1"
        assert leaks_numpy.available()
        return plain, run()
    finally:
        if old is None:
            os.environ.pop("GDBEXT_NUMPY", None)
        else:
            os.environ["GDBEXT_NUMPY"] = old


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_numpy_scan_finds_what_the_python_scan_finds(data):
    """numpy is an optional accelerator: with it, scan() gives the same reachable, referenced
    and doubtful nodes, the same edges, levels and paths, and the same root byte counts:
    interior pointers, junk in and around the heap, unaligned blocks, heaps with gaps (no cell
    map then, when a node ends off an 8-byte boundary)."""
    count = data.draw(st.integers(1, 30))
    sizes = [data.draw(st.sampled_from([0x20, 0x30, 0x50, 0x1000])) for _ in range(count)]
    n = nodes_of(sizes)
    if data.draw(st.booleans()):  # a node ending off an 8-byte boundary: the set path
        n.end[-1] -= 4
    lo, hi = HEAP - 0x100, n.end[-1] + 0x100
    words = {}
    for i in range(count):
        for k in range(min(data.draw(st.integers(0, 3)), (n.end[i] - n.start[i]) // 8)):
            words[n.start[i] + 8 * k] = data.draw(
                st.one_of(st.sampled_from(list(n.start)), st.integers(lo, hi), st.integers(0, (1 << 64) - 1))
            )
    heap = heap_bytes(n, words)
    cut = data.draw(st.integers(0, len(heap)))
    blocks = [(HEAP, heap[:cut]), (HEAP + cut, heap[cut:])]
    values = data.draw(st.lists(st.one_of(st.sampled_from(list(n.start)), st.integers(lo, hi)), max_size=20))
    skew = data.draw(st.integers(0, 7))
    raw = bytes(skew) + struct.pack(f"<{len(values)}Q", *values)
    roots = [(Root("anon", ROOT + 8 - skew, ROOT + 8 + len(raw)), ROOT + 8 - skew, raw)]
    regs = [Register(1, "rbx", data.draw(st.integers(lo, hi)))]
    doubt = [(0x6000_0000_0000, struct.pack("<Q", data.draw(st.integers(lo, hi))))]

    def run():
        got = scan(n, regs, roots, blocks, doubt)
        return (
            got.reachable,
            got.referenced,
            got.doubtful,
            list(got.src),
            list(got.dst),
            list(got.edge_start),
            got.levels,
            [got.path(i) for i in range(count)],
            got.root_bytes,
        )

    plain, fast = _both_ways(run)
    if fast is not None:
        assert fast == plain


def test_nodes_from_a_heap_are_the_same_with_and_without_numpy():
    """The used chunks of a built heap, less its tcache, with their user memory: numpy's
    per-heap selection gives the Nodes the pure-Python one gives."""
    from gdbext.model.leaks import nodes_from_state
    from gdbext.model.ptmalloc import Layout
    from tests.unit.test_ptmalloc_builder import HeapBuilder

    L = Layout.for_version((2, 36), 8)
    b = HeapBuilder(L)
    t = b.tcache_for(1)
    used = [b.alloc(s) for s in (0x20, 0x100, 0x30, 0x500, 0x40, 0x20)]
    b.tcache_put(1, used[0])
    b.fastbin_put(used[2])
    b.bin_put(used[3], 1)
    state = b.analyze()

    def run():
        n = nodes_from_state(state, L, [t - L.chunk_hdr_sz])
        return list(n.chunk), list(n.start), list(n.end), list(n.size), n.arena, n.uncertain, n.spans

    plain, fast = _both_ways(run)
    assert plain[0] == [used[1], used[4], used[5]]
    assert plain[2] == [c + b.size_of(c) + 8 for c in plain[0]]
    if fast is not None:
        assert fast == plain
