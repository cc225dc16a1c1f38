"""libc's `tcache` TLS variable from libc's file alone (gdbext/model/elftls.py), on Debian's
real glibc 2.43 and 2.44 (tests/glibcs.py fetches them) and the host's.  The oracles are not
our code: gdb's reading of libc6-dbg's debug info (`info address tcache`: the variable's
offset in libc's TLS block; `info address __tcache_dummy`) and binutils' `readelf -r` (the
R_X86_64_TPOFF64 relocation, with no symbol, whose addend is that offset: its GOT word)."""

import re
import shutil
import struct
import subprocess

import pytest

from gdbext.model.elftls import bytes_reader, initial_exec_slots, pointer_to_zeros, tls_image
from tests import glibcs as G

TCACHE_SIZE = 760  # sizeof (tcache_perthread_struct) on 2.43 and 2.44: 76 two-byte counts, 76 pointers


def debug_facts(debug_file: str) -> dict:
    """gdb's answers from libc6-dbg's debug info: tcache's offset in the TLS block, the dummy's
    address, the struct's size."""
    if not shutil.which("gdb"):
        pytest.skip("no gdb to read libc6-dbg's debug info")
    out = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", "info address tcache", "-ex", "info address __tcache_dummy",
         "-ex", "p sizeof(tcache_perthread_struct)", debug_file],
        capture_output=True, text=True, timeout=120).stdout
    offset = re.search(r'"tcache" is a thread-local variable at offset (0x[0-9a-f]+)', out)
    dummy = re.search(r'"__tcache_dummy" is static storage at address (0x[0-9a-f]+)', out)
    size = re.search(r"^\$1 = (\d+)", out, re.M)
    assert offset and size, out
    return {"offset": int(offset.group(1), 16), "dummy": int(dummy.group(1), 16) if dummy else None,
            "size": int(size.group(1))}


def tpoff_relocations(libc: str) -> dict:
    """{addend: r_offset} of libc's symbol-less R_X86_64_TPOFF64 relocations, by readelf."""
    out = subprocess.run(["readelf", "-rW", libc], capture_output=True, text=True, timeout=60).stdout
    got = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] == "R_X86_64_TPOFF64":
            got.setdefault(int(f[3], 16), int(f[0], 16))
    return got


@pytest.mark.parametrize("version", ["2.43", "2.44"])
def test_tcache_variable_is_the_one_debug_info_names(version):
    if not shutil.which("readelf"):
        pytest.skip("no readelf (binutils) for the oracle")
    g = G.for_test(version, True)
    facts = debug_facts(g.debug_file)
    assert facts["size"] == TCACHE_SIZE
    with open(g.libc, "rb") as f:
        data = f.read()
    var = pointer_to_zeros(bytes_reader(data), TCACHE_SIZE)
    assert var is not None
    assert var.offset == facts["offset"]
    assert var.initial == facts["dummy"]
    assert var.got == tpoff_relocations(g.libc)[facts["offset"]]
    # every symbol-less TPOFF64 relocation readelf lists, and no other
    assert initial_exec_slots(bytes_reader(data)) == tpoff_relocations(g.libc)
    image = tls_image(bytes_reader(data))
    assert image is not None and var.offset + 8 <= len(image.init)


def test_older_glibc_has_no_initialised_tcache():
    """Before 2.43 `tcache` starts NULL (in .tbss): no initial value names it, so None, and
    callers keep their TLS slot search.  Its offset still has a GOT word (when gdb can tell
    where it is, from the host's libc6-dbg)."""
    if tuple(map(int, G.host_version().split("."))) >= (2, 43):
        pytest.skip(f"the host's glibc {G.host_version()} is not older than 2.43")
    g = G.for_test(G.host_version(), False)
    with open(g.libc, "rb") as f:
        data = f.read()
    assert pointer_to_zeros(bytes_reader(data), 0x290) is None
    image = tls_image(bytes_reader(data))
    assert image is not None
    if g.debug_file and shutil.which("gdb"):
        offset = debug_facts(g.debug_file)["offset"]
        assert offset >= len(image.init), "tcache lies in .tbss"
        assert offset in initial_exec_slots(bytes_reader(data))


def test_two_words_pointing_at_zeros_name_nothing():
    """Two initialised TLS words pointing at zeros: which one is tcache cannot be told."""
    g = G.for_test("2.43", False)
    with open(g.libc, "rb") as f:
        data = bytearray(f.read())
    var = pointer_to_zeros(bytes_reader(bytes(data)), TCACHE_SIZE)
    assert var is not None
    image = tls_image(bytes_reader(bytes(data)))
    slots = initial_exec_slots(bytes_reader(bytes(data)))
    other = next(o for o in range(0, len(image.init), 8) if o != var.offset and o in slots)
    # the image's file offset: PT_TLS's, which readelf -l shows
    out = subprocess.run(["readelf", "-lW", g.libc], capture_output=True, text=True).stdout
    tls_offset = int(next(line.split()[1] for line in out.splitlines() if line.split()[:1] == ["TLS"]), 16)
    struct.pack_into("<Q", data, tls_offset + other, var.initial)
    assert pointer_to_zeros(bytes_reader(bytes(data)), TCACHE_SIZE) is None


def test_not_an_x86_64_elf():
    assert pointer_to_zeros(bytes_reader(b"\x7fELF" + bytes(60)), TCACHE_SIZE) is None
    assert tls_image(bytes_reader(b"")) is None
    assert initial_exec_slots(bytes_reader(b"not an elf" * 10)) == {}
