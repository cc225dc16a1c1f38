"""The nearest-symbol look-up addrinfo uses (no gdb): sizes, nesting, aliases, far misses."""

from gdbext.model.elfnearest import FAR, SymbolTable, nearest


def table(entries):
    entries = sorted(entries)
    return SymbolTable([e[0] for e in entries], entries, ".symtab", False)


def test_inside_a_sized_symbol():
    t = table([(0x1000, 0x40, "f"), (0x1040, 0x10, "g")])
    assert nearest(t, 0x1000) == ("f", 0)
    assert nearest(t, 0x103F) == ("f", 0x3F)
    assert nearest(t, 0x1045) == ("g", 5)
    assert nearest(t, 0x1050) is None  # past g's end, and g has a size
    assert nearest(t, 0xFFF) is None


def test_nested_and_unsized():
    t = table([(0x2000, 0x100, "outer"), (0x2010, 0x8, "inner"), (0x3000, 0, "label")])
    assert nearest(t, 0x2012) == ("inner", 2)
    assert nearest(t, 0x2020) == ("outer", 0x20)  # past inner, still in outer
    assert nearest(t, 0x3004) == ("label", 4)
    assert nearest(t, 0x3000 + FAR) is None
