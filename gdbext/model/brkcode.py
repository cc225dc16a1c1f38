"""Reading libc's x86-64 `__brk` from gdb's disassembly: where it goes when the kernel refuses.

The brk system call never fails as such: it answers with the break it kept, and __brk compares
that with the break it asked for (in %rdi), sets errno to ENOMEM and returns -1 when the new
one is lower.  That comparison is the one to find; a conditional jump before it may test for
a -errno result instead (glibc 2.31 does, 2.36 and 2.41 do not):

    glibc 2.31                                  glibc 2.36, 2.41
    syscall                                     syscall
    cmp    $0xfffffffffffff000,%rax             mov    0x...(%rip),%rdx
    ja     <__brk+40>          (-errno)         mov    %rax,(%rdx)
    mov    0x...(%rip),%rdx                     cmp    %rdi,%rax
    mov    %rax,(%rdx)                          jb     <__brk+32>     (ENOMEM)
    cmp    %rax,%rdi
    ja     <__brk+72>          (ENOMEM)

Both AT&T and Intel syntax are read (gdb follows the user's `set disassembly-flavor`).
"""

import re
from typing import Iterable, Optional, Set, Tuple

Insn = Tuple[int, int, str]  # (address, length, text as gdb prints it)

# Unsigned conditions, with the signed ones read the same way (a break is never negative).
_BELOW = {"jb", "jnae", "jc", "jl", "jnge"}  # taken when left < right
_ABOVE_OR_EQUAL = {"jae", "jnb", "jnc", "jge", "jnl"}  # left >= right
_ABOVE = {"ja", "jnbe", "jg", "jnle"}  # left > right
_BELOW_OR_EQUAL = {"jbe", "jna", "jle", "jng"}  # left <= right
_REG = re.compile(r"^%?([a-z][a-z0-9]*)$")


def _operands(text: str):
    """(mnemonic, [operands in Intel order: destination first]) of one instruction."""
    words = text.split(None, 1)
    if not words:
        return "", []
    mnemonic = words[0].lower()
    rest = words[1].split("#", 1)[0].split("<", 1)[0].strip() if len(words) > 1 else ""
    ops = [o.strip() for o in re.split(r",(?![^(\[]*[)\]])", rest) if o.strip()]
    if "%" in rest or "$" in rest:  # AT&T: source first
        ops.reverse()
    return mnemonic, ops


def _reg(operand: str) -> Optional[str]:
    m = _REG.match(operand.lower())
    return m.group(1) if m else None


def _full(reg: str) -> str:
    """The 64-bit register a register name is part of: eax, ax, al -> rax; r8d -> r8."""
    m = re.fullmatch(r"(r\d+)[dwb]?", reg)
    if m:
        return m.group(1)
    m = re.fullmatch(r"e?([a-d])[xlh]|r([a-d])x", reg)
    if m:
        return f"r{m.group(1) or m.group(2)}x"
    m = re.fullmatch(r"[er]?(si|di|bp|sp)l?", reg)
    return f"r{m.group(1)}" if m else reg


def _target(text: str) -> Optional[int]:
    m = re.match(r"\s*\S+\s+(0x[0-9a-fA-F]+)\b", text)
    return int(m.group(1), 16) if m else None


def brk_failure_branch(insns: Iterable[Insn]) -> Optional[int]:
    """The address __brk reaches only when the kernel kept a lower break than %rdi asked for:
    after the system call, the compare of the result (%rax, or a register it was copied to)
    with the request (%rdi, or a copy), and the conditional jump right after it; the jump's
    target, or the instruction after the jump when the jump is the success path.  None when
    the code has no such compare and jump."""
    requested: Set[str] = {"rdi"}
    result: Set[str] = set()
    seen_syscall = False
    compare = None  # (left, right) as flags = left - right: "request" or "result" each
    for address, length, text in insns:
        mnemonic, ops = _operands(text)
        if mnemonic == "syscall":
            seen_syscall, result, compare = True, {"rax"}, None
            continue
        if compare is not None:
            if not mnemonic.startswith("j") or mnemonic == "jmp":
                return None  # the compare's flags are not used by a jump right after it
            target = _target(text)
            if target is None:
                return None
            after = address + length
            failure_is_left_below = compare == ("result", "request")  # result < request
            if mnemonic in _BELOW:
                return target if failure_is_left_below else None
            if mnemonic in _ABOVE_OR_EQUAL:
                return after if failure_is_left_below else None
            if mnemonic in _ABOVE:
                return None if failure_is_left_below else target
            if mnemonic in _BELOW_OR_EQUAL:
                return None if failure_is_left_below else after
            return None
        regs = [_reg(o) for o in ops]
        if seen_syscall and mnemonic in ("cmp", "cmpq") and len(ops) == 2 and all(regs):
            kinds = ["request" if r in requested else "result" if r in result else None for r in regs]
            if sorted(k or "" for k in kinds) == ["request", "result"]:
                compare = (kinds[0], kinds[1])
            continue
        if not ops or not regs[0] or mnemonic.startswith(("cmp", "test", "push", "j")):
            continue
        # The instruction writes its first (Intel) operand: what that register held is gone,
        # unless a whole 64-bit register is copied into it.
        dst = _full(regs[0])
        copied = (
            mnemonic in ("mov", "movq")
            and len(ops) == 2
            and regs[1] == _full(regs[1] or "")
            and regs[0] == dst
        )
        src = regs[1] if copied else None
        for group in (requested, result):
            had = src in group
            group.discard(dst)
            if had:
                group.add(dst)
    return None
