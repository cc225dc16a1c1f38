"""fakechunks --near ADDRESS keeps the candidates that hold ADDRESS anywhere, header included:
an exploit that controls the word at ADDRESS as a size field asks for the chunk whose size field
it is, one that wants malloc to return memory over ADDRESS for the chunk whose user memory holds
it. Checked on fake_chunks' planted static fake (its address from the demo) at each part of it,
and against glibc itself by test_fakechunks.py's fork oracle for the same candidates."""

import pytest

from tests.harness import Gdb, assert_clean, demo

pytestmark = pytest.mark.gdb


def test_near_holds_the_header_and_the_user_memory():
    gdb = Gdb(demo("fake_chunks"), ["/dev/null"])
    try:
        gdb.run_to("planted")
        fake = gdb.facts["fake.static.0x40"]
        user = fake + 16
        where = {}
        for near in (fake, fake + 8, fake + 12, user, user + 0x30, fake + 0x40, fake + 0x48):
            d = gdb.json(f"fakechunks 0x40 --near {near:#x} --json")
            assert d["near"] == near
            where[near] = {c["address"]: c["near_offset"] for c in d["candidates"]}
        # prev_size, the size field (and a byte of it), the user memory to its last word
        assert where[fake][fake] == -16 and where[fake + 8][fake] == -8 and where[fake + 12][fake] == -4
        assert where[user][fake] == 0 and where[user + 0x30][fake] == 0x30
        # the next chunk's size field is past it; its prev_size is the last of its user memory
        assert where[fake + 0x40][fake] == 0x30 and fake not in where[fake + 0x48]
        text = gdb.cmd(f"fakechunks 0x40 --near {fake + 8:#x}")
        assert_clean(text)
        row = next(line for line in text.splitlines() if f"{fake:x}" in line)
        assert "size field" in row and f"{fake + 8:#x} at" in text
        assert gdb.json("fakechunks 0x40 --json")["candidates"][0]["near_offset"] is None
    finally:
        gdb.close()
