"""allocwatch's site table (model/allocsites.py) without gdb: what each call means for the
table, each misuse it detects and the groups by site, against histories written out by hand."""

import pytest

from gdbext.model.allocoptions import AllocOptions, parse_range
from gdbext.model.allocsites import BEFORE, UNKNOWN, Call, SiteTable, Site, group_by_site
from gdbext.render.fmt import parse_size

A = Site("parse", "x.c", 42, 0x401000)
B = Site("load", "x.c", 50, 0x401100)
F = Site("release", "x.c", 60, 0x401200)
G = Site("again", "x.c", 70, 0x401300)


class History:
    def __init__(self, before=(), sampled=False):
        self.t = SiteTable(sampled=sampled)
        self.t.begin(before)

    def alloc(self, site, result, size=32, function="malloc", pointer=None, thread=1):
        c = Call(self.t.next_event(), function, thread, site, size=size, pointer=pointer)
        found = self.t.check_pointer(c, pointer, realloc=True) if pointer else None
        c.result = result
        self.t.allocated(c)
        return found

    def free(self, site, pointer, thread=1):
        return self.t.free(Call(self.t.next_event(), "free", thread, site, pointer=pointer))


def test_site_labels():
    assert A.label == "parse (x.c:42)"
    assert Site(None, None, None, 0x401136, "prog", 0x1136).label == "prog+0x1136"
    assert Site(None, None, None, 0x401136).label == "0x401136"
    assert Site("f", "x.c", None, 1).label == "f (x.c)"


def test_live_and_freed_chunks_know_their_sites():
    h = History()
    h.alloc(A, 0x1000)
    h.alloc(B, 0x2000, thread=2)
    assert h.free(F, 0x1000) is None
    assert h.t.site_of(0x2000)[0] == "allocated" and h.t.site_of(0x2000)[1].site == B
    kind, call = h.t.site_of(0x1000)
    assert kind == "freed" and call.site == F
    assert h.t.allocation_of(0x1000).site == A
    assert h.t.label_of(0x2000) == B.label
    assert h.t.label_of(0x3000) == UNKNOWN
    assert h.t.live[0x2000].said() == "`load (x.c:50)` in thread 2, event #2"


def test_double_free_names_both_sites():
    h = History()
    h.alloc(A, 0x1000)
    h.free(F, 0x1000)
    d = h.free(G, 0x1000)
    assert d.kind == "double-free" and d.allocated.site == A and d.freed.site == F and d.call.site == G
    assert d.message() == (
        "double free of 0x1000 by `again (x.c:70)` in thread 1, event #3; allocated by "
        "`parse (x.c:42)` in thread 1, event #1; freed by `release (x.c:60)` in thread 1, event #2"
    )
    assert h.t.detections == [d]
    assert h.t.totals.frees == 1  # the second free is not counted as one


def test_reuse_after_free_is_no_double_free():
    h = History()
    h.alloc(A, 0x1000)
    h.free(F, 0x1000)
    h.alloc(B, 0x1000)
    assert h.free(F, 0x1000) is None
    assert h.t.detections == []


def test_free_of_a_pointer_never_returned():
    h = History(before=[0x5000])
    assert h.free(F, 0x5000) is None  # existed before tracking: fine
    d = h.free(F, 0x1010)
    assert d.kind == "invalid-free" and d.allocated is None
    assert h.free(F, 0) is None  # free(NULL)


def test_unknown_heap_or_sampling_reports_no_invalid_free():
    h = History(before=None)
    assert h.free(F, 0x1010) is None
    h = History(sampled=True)
    assert h.free(F, 0x1010) is None
    # an unsampled malloc may have returned it again: no double free can be told
    assert h.free(F, 0x1010) is None and h.t.detections == []


def test_realloc_moves_frees_and_detects():
    h = History()
    h.alloc(A, 0x1000)
    assert h.alloc(B, 0x2000, function="realloc", pointer=0x1000, size=100) is None
    assert 0x1000 not in h.t.live and h.t.live[0x2000].site == B
    assert h.t.site_of(0x1000)[0] == "freed"
    # realloc in place keeps the pointer, now with realloc's site
    h.alloc(G, 0x2000, function="realloc", pointer=0x2000, size=120)
    assert h.t.live[0x2000].site == G
    # realloc(p, 0) frees p
    h.alloc(F, 0, function="realloc", pointer=0x2000, size=0)
    assert 0x2000 not in h.t.live
    d = h.alloc(B, 0x3000, function="realloc", pointer=0x2000, size=8)
    assert d.kind == "realloc-freed" and d.freed.site == F


def test_failed_allocation_and_failed_realloc_keep_the_old_block():
    h = History()
    h.alloc(A, 0x1000)
    h.alloc(B, 0, function="realloc", pointer=0x1000, size=1 << 60)
    assert h.t.live[0x1000].site == A
    h.alloc(B, 0, size=1 << 60)
    assert h.t.totals.failed == 2


def test_groups_by_site_with_before_and_unknown():
    h = History(before=[0x9000])
    for i in range(3):
        h.alloc(A, 0x1000 + i * 0x40)
    h.alloc(B, 0x2000)
    groups = group_by_site(h.t, [(0x1000, 64), (0x1040, 64), (0x1080, 64), (0x2000, 128), (0x9000, 32),
                                 (0x7000, 16)])
    got = {g.label: (g.chunks, g.bytes) for g in groups}
    assert got == {A.label: (3, 192), B.label: (1, 128), BEFORE: (1, 32), UNKNOWN: (1, 16)}
    assert groups[0].label == A.label
    assert groups[0].to_json()["function"] == "parse"


def test_freed_memory_is_bounded(monkeypatch):
    import gdbext.model.allocsites as M

    monkeypatch.setattr(M, "MAX_FREED", 3)
    h = History()
    for i in range(5):
        h.alloc(A, 0x1000 + i)
        h.free(F, 0x1000 + i)
    assert list(h.t.freed) == [0x1002, 0x1003, 0x1004]


def test_size_ranges_and_options():
    assert parse_range("16-64", parse_size) == (16, 64)
    assert parse_range("4k-", parse_size) == (4096, (1 << 64) - 1)
    assert parse_range("-1M", parse_size) == (0, 1 << 20)
    assert parse_range("24", parse_size) == (24, 24)
    with pytest.raises(ValueError):
        parse_range("64-16", parse_size)
    o = AllocOptions(sizes=(16, 64))
    assert o.wants(16) and o.wants(64) and not o.wants(65) and o.wants(None)
    assert AllocOptions().to_json()["returns"] == "address"


def test_snapshot_keeps_sites_and_diffs_by_site():
    from gdbext.model.ptmalloc import snapshot as S
    from gdbext.model.ptmalloc.chunks import TCACHE, USED

    def snap(name, chunks):
        s = S.Snapshot(name, {"chunk_header": 16})
        for addr, size, state in chunks:
            s.addrs.append(addr)
            s.sizes.append(size)
            s.states.append(state)
            s.arena_of.append(0)
        return s

    labels = {0x1010: A.label, 0x1050: A.label, 0x2010: B.label}
    a = snap("a", [(0x1000, 64, USED)])
    b = snap("b", [(0x1000, 64, TCACHE), (0x1040, 64, USED), (0x2000, 64, USED), (0x3000, 64, USED)])
    a.add_sites(lambda p: labels.get(p, UNKNOWN))
    b.add_sites(lambda p: labels.get(p, UNKNOWN))
    assert b.sites == {0x1040: A.label, 0x2000: B.label, 0x3000: UNKNOWN}
    b = S.Snapshot.from_json(b.to_json())
    assert b.sites[0x2000] == B.label
    doc = S.diff(a, b, "site")
    got = {g["key"]: (g["added"]["count"], g["changed"]["count"]) for g in doc["summary"]["groups"]}
    assert got == {A.label: (1, 1), B.label: (1, 0), UNKNOWN: (1, 0)}


def test_libc_own_chunks_are_named():
    h = History()
    h.alloc(A, 0x1000)
    groups = group_by_site(h.t, [(0x1000, 64), (0x500, 656)], {0x500: "libc: the tcache of thread 1"})
    assert {g.label: g.chunks for g in groups} == {A.label: 1, "libc: the tcache of thread 1": 1}


def test_libc_freeing_what_it_holds_is_no_misuse():
    """A thread's exit: libc frees the chunks its tcache holds (freed by the program already)
    and the tcache itself (never returned to the program)."""
    h = History()
    h.alloc(A, 0x1000)
    h.free(F, 0x1000)
    assert h.t.free(Call(h.t.next_event(), "free", 2, G, pointer=0x1000), by_libc=True) is None
    assert h.t.free(Call(h.t.next_event(), "free", 2, G, pointer=0x500), by_libc=True) is None
    assert h.t.detections == [] and h.t.totals.libc_frees == 2 and h.t.totals.frees == 1
    # a chunk the program holds, freed by libc for it (fclose's buffer): an ordinary free
    h.alloc(A, 0x2000)
    assert h.t.free(Call(h.t.next_event(), "free", 1, G, pointer=0x2000), by_libc=True) is None
    assert h.t.site_of(0x2000)[0] == "freed" and h.t.totals.frees == 2


def test_on_again_drops_what_was_freed_while_off():
    h = History()
    h.alloc(A, 0x1000)
    h.alloc(B, 0x2000)
    h.t.begin([0x2000, 0x3000])  # 0x1000 was freed while off, 0x3000 allocated
    assert 0x1000 not in h.t.live and h.t.live[0x2000].site == B
    assert h.t.before == {0x3000}
    assert h.free(F, 0x3000) is None and h.t.detections == []


def test_views_status_log_and_groups():
    from gdbext.views import allocwatch as V
    from gdbext.views import plain_text

    h = History(before=[0x9000])
    h.alloc(A, 0x1000)
    h.free(F, 0x1000)
    h.free(G, 0x1000)
    st = {
        "on": True, "options": AllocOptions(sample=4).to_json(), "pid": 7, "inferior": 1, "armed": True,
        "waiting": None, "entry_points": 9, "return_hooks": 1, "watched": [], "events": 3,
        "allocations": 1, "frees": 1, "failed": 0, "skipped": 0, "live": 0, "before_tracking": 1,
        "before_known": True, "detections": 1, "stop_on_detection": True, "notes": [], "errors": 0,
        "last_error": None,
    }
    text = plain_text(V.status_items(st))
    assert "options: results by address, --sample 4" in text
    assert "9 entry points of libc, 1 return address\n" in text
    assert "1 chunk before tracking" in text
    log = plain_text(V.log_items(h.t, list(h.t.log)))
    assert "release (x.c:60)" in log and "detected: double free of 0x1000" in log
    assert V.detection_line(h.t.detections[0]).startswith("allocwatch: double free of 0x1000 by `again")
    groups = group_by_site(h.t, [(0x9000, 32)])
    assert plain_text(V.site_groups_items(groups, "in use")).splitlines()[0] == (
        "1 chunk in use (32 B), 0 call sites"
    )
    assert V.allocation_text("freed", h.t.site_of(0x1000)[1], h.t.allocation_of(0x1000)).startswith(
        "freed by `release (x.c:60)` in thread 1, event #2; allocated by `parse (x.c:42)`"
    )


def test_jumps_back_to_an_entry_point():
    """glibc 2.43's free, after making a thread's tcache: `jmp <free>` from inside free."""
    from gdbext.model.allocentries import jumps_to

    insns = [
        (0xA5440, 1, "push   %rbx"),
        (0xA5446, 5, "call   0xa3e90"),
        (0xA544F, 5, "jmp    0xa51e0 <__libc_free>"),
        (0xA5460, 5, "jmp    0xa2500"),
        (0xA5470, 2, "jmp    *%rax"),
    ]
    assert jumps_to(insns, {0xA51E0}) == [0xA544F]
