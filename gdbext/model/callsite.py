"""Which function an x86-64 call instruction called, read from the machine code around it.

A frame's return address follows the call that made it.  When the function called ends in a
tail call (glibc 2.31's free in munmap, 2.43's malloc in __libc_malloc2, valloc in memalign's
code), its own frame is gone, but the caller's call instruction still names it: a direct
`call rel32`, a `call *slot(%rip)` through the GOT (-fno-plt), or a call to a PLT stub that
jumps through its GOT slot (`jmp *slot(%rip)`, after `endbr64` and/or a `bnd` prefix).  By the
time the callee runs, the lazy binder has written the slot, so the slot holds the function.
"""

import struct
from typing import Optional, Tuple

Target = Tuple[str, int]  # ("code", address of the function) or ("slot", address of a GOT slot)
ENDBR64 = b"\xf3\x0f\x1e\xfa"


def call_before(code: bytes, return_address: int) -> Optional[Target]:
    """What the call ending at `return_address` called; `code` is the 6 bytes before it."""
    if len(code) < 6:
        return None
    if code[0:2] == b"\xff\x15":  # call *disp32(%rip)
        return "slot", return_address + struct.unpack_from("<i", code, 2)[0]
    if code[1] == 0xE8:  # call rel32
        return "code", (return_address + struct.unpack_from("<i", code, 2)[0]) & ((1 << 64) - 1)
    return None


def plt_slot(stub: bytes, address: int) -> Optional[int]:
    """The GOT slot a PLT stub at `address` jumps through, None when `stub` (its first 16
    bytes) is not a PLT stub."""
    pos = 4 if stub.startswith(ENDBR64) else 0
    if stub[pos : pos + 1] == b"\xf2":  # bnd
        pos += 1
    if stub[pos : pos + 2] != b"\xff\x25" or len(stub) < pos + 6:  # jmp *disp32(%rip)
        return None
    return address + pos + 6 + struct.unpack_from("<i", stub, pos + 2)[0]
