"""heapvis's text and document from a synthetic heap: one letter per chunk on every line (what
tells chunks apart without colour), neighbours in different colours, a safe-linked next pointer
shown stored and revealed, a folded run with its extent, and the document's keys."""

from gdbext.model.ptmalloc.vis import walk
from gdbext.views import heapvis, plain_text
from tests.unit.test_heapvis_model import _lookup
from tests.unit.test_ptmalloc_builder import standard_heap


def _vis(version=(2, 36)):
    b, c = standard_heap(version)
    state = b.analyze()
    first = state.arenas[0].heaps[0].first_chunk
    return b, c, walk(state.memory, b.L, first, 1000, _lookup(state), lambda v: None)


def test_text_marks_colours_and_links():
    b, c, vis = _vis()
    items = list(heapvis.text(None, vis, 8, "a note"))
    text = plain_text(items)
    lines = text.splitlines()
    assert lines[0] == "a note"
    chunk_lines = [ln for ln in lines if " chunk 0x" in ln]
    assert [ln[0] for ln in chunk_lines] == [heapvis.mark(k) for k in range(len(vis.chunks))]
    tokens = [item[0][1] for item in items[1:] if " chunk 0x" in item[0][0]]
    assert all(a != b for a, b in zip(tokens, tokens[1:]))
    assert "next, stored mangled; revealed 0x" in text
    assert "stopped: the top chunk" in lines[-1]
    assert any(" x" in ln and ", to 0x" in ln for ln in lines)


def test_document_keys():
    b, c, vis = _vis((2, 31))
    d = heapvis.document_body(None, vis, False, 16)
    assert set(d) == {"heap", "start", "fake", "stop", "chunks", "problems"}
    ch = d["chunks"][0]
    assert set(ch) == {
        "address", "user_address", "size", "size_field", "flags", "state", "bin", "known", "words",
        "hidden_words",
    }
    assert set(ch["words"][0]) == {
        "address", "value", "repeat", "role", "decoded", "points_to", "points_to_chunk",
    }
    t = next(x for x in d["chunks"] if x["state"] == "tcache")
    assert t["words"][2]["role"] == "next" and t["words"][2]["decoded"] is None  # 2.31: not mangled
