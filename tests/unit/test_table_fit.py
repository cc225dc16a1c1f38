"""Tables fit a width (issue 12 item 10): addresses lose shared leading zeros, then shared high
digits move to the header, columns marked `cut` are cut with …, columns marked `drop` go least
important first, and a line that still cannot fit is cut, never wrapped. Without a width a
table is laid out as it always was."""

import re

from gdbext.render.table import Table, cut, display_width, wrap_line


def text(lines):
    return ["".join(t for t, _ in line) for line in lines]


def vmmap_like():
    t = Table(
        ["start", "end", "size", "perms", "offset", "kind", "path / label"],
        "lllllll",
        drop=("offset", "size"),
        cut_start=("path / label",),
        addresses=("start", "end"),
    )
    t.add("0x0000555555554000", "0x0000555555555000", "0x1000 (4 KiB)", "r--p", "0x0", "rodata",
          "/opt/example/a/long/directory/demo_c/build/malloc_sizes")
    t.add("0x00007ffff7dd5000", "0x00007ffff7dfb000", "0x26000 (152 KiB)", "r-xp", "0x26000", "code",
          "/usr/lib/x86_64-linux-gnu/libc.so.6")
    return t


def test_no_width_is_the_table_as_before():
    t = vmmap_like()
    full = text(t.lines())
    assert text(t.lines(None)) == full == text(t.lines(0)) == text(t.lines(1000))
    assert full[1].startswith("0x0000555555554000  0x0000555555555000  0x1000 (4 KiB)")


def test_every_line_fits_and_fields_stay_whole():
    t = vmmap_like()
    for width in (120, 100, 80, 60):
        lines = text(t.lines(width))
        assert all(display_width(x) <= width for x in lines), (width, lines)
        for row in lines[1:]:
            start, end = re.findall(r"0x[0-9a-f]+", row)[:2]
            assert int(end, 16) > int(start, 16)  # whole addresses, still valid hex


def test_addresses_first_lose_the_leading_zeros_they_all_share():
    lines = text(vmmap_like().lines(100))
    assert lines[1].startswith("0x555555554000  0x555555555000  ")
    assert lines[2].startswith("0x7ffff7dd5000  0x7ffff7dfb000  ")


def test_columns_drop_in_the_order_given_and_paths_keep_their_file_name():
    lines = text(vmmap_like().lines(70))
    assert lines[0].split() == ["start", "end", "perms", "kind", "path", "/", "label"]
    assert lines[1].endswith("malloc_sizes") and "…" in lines[1]  # cut at its start
    assert lines[2].endswith("libc.so.6")


def test_shared_high_digits_go_to_the_header_when_that_is_narrower():
    t = Table(["#", "stack [low, high)", "function"], "rll",
              addresses=("stack [low, high)",), cut=("function",))
    addrs = [(0x7FFFFF7FF000, 0x7FFFFFFFF000), (0x7FFFF75D2000, 0x7FFFF7DD2000)]
    for n, (lo, hi) in enumerate(addrs):
        t.add(str(n), f"0x{lo:016x}-0x{hi:016x}", "a_rather_long_function_name_here")
    lines = text(t.lines(50))
    assert all(len(x) <= 50 for x in lines), lines
    m = re.search(r"\(0x([0-9a-f]+)…\)", lines[0])
    assert m, lines[0]
    for line, (lo, hi) in zip(lines[1:], addrs):  # prefix + cell is the full address
        a, b = re.search(r"([0-9a-f]+)-([0-9a-f]+)", line).groups()
        assert (int(m.group(1) + a, 16), int(m.group(1) + b, 16)) == (lo, hi)


def test_full_addresses_stay_when_the_table_fits():
    t = Table(["address", "size"], "lr", addresses=("address",))
    t.add("0x00007ffff7fa8c60", "0x20")
    assert text(t.lines(80)) == text(t.lines())


def test_one_huge_cell_is_cut_not_wrapped():
    t = Table(["field", "value"], "ll")
    t.add("name", "x" * 300)
    lines = text(t.lines(40))
    assert len(lines) == 2 and len(lines[1]) == 40 and lines[1].endswith("…")


def test_wide_characters_count_two_columns_when_cut():
    assert cut("工作线程工作线程", 7) == "工作线…"
    assert display_width(cut("工作线程工作线程", 7)) == 7
    assert cut("abcdef", 4, at_start=True) == "…def"


def test_notes_break_between_words():
    t = vmmap_like()
    t.notes.append("note: gcore writes PROT_NONE memory as r--p; " * 4)
    notes = text(t.lines(60))[3:]
    assert len(notes) > 1 and all(len(x) <= 60 for x in notes)
    assert "r--p;" in " ".join(notes).split()


def test_prose_lines_break_between_words():
    line = [("  tcache[0]", "free"), (" size 0x20: 7 chunks: ", None),
            (" -> ".join(f"0x{0x55555557a700 + 64 * i:016x}" for i in range(7)), "address")]
    parts = wrap_line(line, 60)
    words = [w for p in parts for w in "".join(t for t, _ in p).split()]
    assert words == "".join(t for t, _ in line).split()  # every word whole, in order
    assert all(display_width("".join(t for t, _ in p)) <= 60 for p in parts)
    assert all("".join(t for t, _ in p).startswith("    ") for p in parts[1:])
    assert wrap_line(line, None) == [line]
