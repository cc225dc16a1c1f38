"""The region classifier on recorded and odd maps, no gdb."""

import os

from gdbext.model import elf
from gdbext.model.regions import (Claim, Facts, Mapping, classify, neighbours, parse_proc_maps,
                                  parse_smaps_rss, region_at)

RECORDED = """\
55d6b7379000-55d6b737a000 r--p 00000000 fe:00 2146448                    /tmp/t
55d6b737a000-55d6b737b000 r-xp 00001000 fe:00 2146448                    /tmp/t
55d6b737b000-55d6b737c000 r--p 00002000 fe:00 2146448                    /tmp/t
55d6b737c000-55d6b737d000 r--p 00002000 fe:00 2146448                    /tmp/t
55d6b737d000-55d6b737e000 rw-p 00003000 fe:00 2146448                    /tmp/t
55d6ecba8000-55d6ecbc9000 rw-p 00000000 00:00 0                          [heap]
7f67d4000000-7f67d4021000 rw-p 00000000 00:00 0 
7f67d4021000-7f67d8000000 ---p 00000000 00:00 0 
7f67da27e000-7f67da27f000 ---p 00000000 00:00 0 
7f67da27f000-7f67daa7f000 rw-p 00000000 00:00 0 
7f67daacc000-7f67daaf2000 r--p 00000000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f67daaf2000-7f67dac48000 r-xp 00026000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f67dac9f000-7f67daca1000 rw-p 001d3000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f67dacb9000-7f67dacbd000 r--p 00000000 00:00 0                          [vvar]
7f67dacbd000-7f67dacbf000 r--p 00000000 00:00 0                          [vvar_vclock]
7f67dacbf000-7f67dacc1000 r-xp 00000000 00:00 0                          [vdso]
7fff0d4b1000-7fff0d4d2000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
"""


def kinds(regions):
    return [(hex(r.start), r.kind) for r in regions]


def test_recorded_maps_without_facts():
    regs = classify(parse_proc_maps(RECORDED))
    k = dict(kinds(regs))
    assert k["0x55d6b737a000"] == "code"
    assert k["0x55d6b737d000"] == "data"
    assert k["0x55d6ecba8000"] == "heap"
    assert k["0x7f67dacb9000"] == "vvar" and k["0x7f67dacbd000"] == "vvar"
    assert k["0x7f67dacbf000"] == "vdso"
    assert k["0x7fff0d4b1000"] == "stack"
    assert k["0xffffffffff600000"] == "vsyscall"
    assert k["0x7f67d4000000"] == "anon"  # nothing said it is an arena heap
    assert {r.cls for r in regs} <= {"static", "automatic", "dynamic", "reserved", "kernel", "file"}


def test_claims_cut_mappings_and_win():
    maps = parse_proc_maps(RECORDED)
    facts = Facts(claims=[
        Claim(0x7F67DA27F000, 0x7F67DAA7F000, "thread-stack", "", 2, 1234),
        Claim(0x7F67DA27E000, 0x7F67DA27F000, "guard", "", 2, 1234),
        Claim(0x7F67D4000000, 0x7F67D4021000, "arena-heap", "arena"),
        Claim(0x7F67D4021000, 0x7F67D8000000, "arena-reserved", "arena"),
    ])
    regs = classify(maps, facts)
    k = dict(kinds(regs))
    assert k["0x7f67da27f000"] == "thread-stack"
    assert k["0x7f67da27e000"] == "guard"
    assert k["0x7f67d4000000"] == "arena-heap"
    assert k["0x7f67d4021000"] == "arena-reserved"
    r = region_at(regs, 0x7F67DA27F010)
    assert (r.thread, r.tid, r.cls) == (2, 1234, "automatic")


def test_regions_tile_every_mapping_exactly():
    maps = parse_proc_maps(RECORDED)
    facts = Facts(claims=[Claim(0x7F67DA280000, 0x7F67DA290000, "mmap-chunk", "chunk")])
    regs = classify(maps, facts)
    for m in maps:
        inside = [r for r in regs if r.mapping is m]
        assert inside[0].start == m.start and inside[-1].end == m.end
        for a, b in zip(inside, inside[1:]):
            assert a.end == b.start
    assert [r.kind for r in regs if r.mapping.start == 0x7F67DA27F000] == ["anon", "mmap-chunk", "anon"]


def test_empty_maps():
    assert classify([]) == []
    assert parse_proc_maps("") == []
    assert region_at([], 0x1000) is None
    assert neighbours([], 0x1000) == (None, None)


def test_odd_lines():
    text = (
        "00400000-00401000 r-xp 00000000 00:00 0 \n"  # unnamed executable mapping (JIT)
        "00401000-00402000 rw-p 00000000 08:01 77   /home/u/my prog (deleted)\n"
        "00402000-00403000 r--p 00000000 08:01 78   /home/u/dir with spaces/data.bin\n"
        "garbage line\n"
        "00403000-00404000 rw-p 00000000 00:00 0    [anon:my arena]\n"
    )
    maps = parse_proc_maps(text)
    assert [m.path for m in maps] == ["", "/home/u/my prog (deleted)", "/home/u/dir with spaces/data.bin",
                                      "[anon:my arena]"]
    regs = classify(maps)
    # Unnamed executable memory (a JIT's) is dynamic memory, not a program's code segment.
    assert [r.kind for r in regs] == ["anon", "file", "file", "anon"]
    assert regs[0].cls == "dynamic"


def test_neighbours_of_unmapped_address():
    regs = classify(parse_proc_maps(RECORDED))
    below, above = neighbours(regs, 0x55D6B737E010)
    assert below.end == 0x55D6B737E000 and above.start == 0x55D6ECBA8000


def test_smaps_rss():
    text = ("00400000-00401000 r-xp 00000000 00:00 0 \nSize: 4 kB\nRss:  4 kB\n"
            "00401000-00403000 rw-p 00000000 00:00 0  [heap]\nRss: 8 kB\n")
    assert parse_smaps_rss(text) == {0x400000: 4096, 0x401000: 8192}


def test_elf_pieces_of_a_real_binary():
    """Our own interpreter's ELF headers, placed at a made-up base, give code/rodata/data/bss."""
    path = os.path.realpath("/bin/true")
    with open(path, "rb") as f:
        header = f.read(4096)
    obj = elf.parse_program_headers(header, 0x555555554000, path)
    assert obj is not None and obj.bias == 0x555555554000
    ks = {k for _, _, k, _ in elf.pieces(obj)}
    assert {"code", "rodata", "data"} <= ks
    for s, e, k, _ in elf.pieces(obj):
        assert s < e


def test_elf_rejects_junk():
    assert elf.parse_program_headers(b"", 0) is None
    assert elf.parse_program_headers(b"\x7fELF" + bytes(60), 0) is None
    assert elf.parse_program_headers(os.urandom(4096), 0) is None
