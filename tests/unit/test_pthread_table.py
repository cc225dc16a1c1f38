"""model/pthread.py's version table against libc's own debug types, recorded: what gdb's
`ptype /o struct pthread` and `ptype /o tcbhead_t` print for Debian's glibc 2.36 with libc6-dbg
(x86-64) and libc6-dbg:i386 (`pthread_glibc236_*.ptype`, the command in their first lines).
tests/gdb/test_stack_guards.py and test_i386.py check the table against the live debug types of
every glibc they run; this holds the i386 row to them where no gdb runs."""

import os
import re

import pytest

from gdbext.model import pthread as P

HERE = os.path.dirname(__file__)
FIELD = re.compile(r"^/\*\s+(?:(\d+)\s+\|)?\s+(\d+) \*/( +)(.*?)(\w+)(?:\[\d+\])?;$")


def ptype_structs(path: str) -> list:
    """Each `type = ...` of the file as {field: (offset, size)}, for the fields directly inside
    it or inside one of its unions (an anonymous union's members take the union's offset,
    which ptype /o prints on the union's line only)."""
    structs: list = []
    union_offset = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "type = " in line:
                structs.append({})
                continue
            m = re.match(r"^/\*\s+(\d+)\s+\|\s+\d+ \*/ {4}union \{$", line)
            if m:
                union_offset = int(m.group(1))
                continue
            m = FIELD.match(line)
            if not m or not structs:
                continue
            offset, size, indent, name = m.group(1), int(m.group(2)), len(m.group(3)), m.group(5)
            if indent == 4 and offset is not None:
                structs[-1].setdefault(name, (int(offset), size))
            elif indent == 8 and offset is None and union_offset is not None:
                structs[-1].setdefault(name, (union_offset, size))
    return structs


@pytest.mark.parametrize("arch, pointer_size", [("i386", 4), ("x86_64", 8)])
def test_table_row_is_the_debug_types_layout(arch, pointer_size):
    pthread, tcbhead = ptype_structs(os.path.join(HERE, f"pthread_glibc236_{arch}.ptype"))
    # from_fields takes tcbhead_t's `self` as its third pointer: so it is in these types
    assert tcbhead["self"] == (2 * pointer_size, pointer_size)
    assert pthread["header"][0] == 0
    for name in ("stackblock", "stackblock_size", "guardsize"):
        assert pthread[name][1] == pointer_size, name
    from_types = P.from_fields(pthread, pointer_size, (2, 36))
    assert from_types is not None
    (row,) = P.for_version((2, 36), pointer_size)
    assert row.offsets() == from_types.offsets()
    assert row.source == "version table" and row.pointer_size == pointer_size


def test_i386_row_reads_an_i386_struct_pthread():
    """A struct pthread laid out as i386's debug types say, in 4-byte words, gives its block
    through the table's row alone."""
    pthread, _ = ptype_structs(os.path.join(HERE, "pthread_glibc236_i386.ptype"))
    (lay,) = P.for_version((2, 36), 4)
    tp, block, size, guard = 0xF7D4FB40, 0xF754F000, 0x801000, 0x1000
    data = bytearray(lay.span)
    data[8:12] = tp.to_bytes(4, "little")
    data[pthread["tid"][0] : pthread["tid"][0] + 4] = (4242).to_bytes(4, "little")
    for name, value in (("stackblock", block), ("stackblock_size", size), ("guardsize", guard)):
        off = pthread[name][0]
        data[off : off + 4] = value.to_bytes(4, "little")
    got = P.read_block(bytes(data), lay, tp, 4242)
    assert got is not None and got.as_tuple() == (block, size, guard)
    # an x86-64 row does not read it
    assert all(P.read_block(bytes(data) + bytes(0x800), x, tp, 4242) is None for x in P.for_version((2, 36), 8))
