"""Finding __brk's ENOMEM branch in gdb's disassembly of real glibcs, no gdb."""

import pytest

from gdbext.model.brkcode import brk_failure_branch


def insns(text):
    """gdb's `disassemble` lines -> (address, length, asm), lengths from the next address."""
    rows = []
    for line in text.strip().splitlines():
        addr, asm = line.split(":", 1)
        rows.append([int(addr.split()[0], 16), asm.strip()])
    return [(a, (rows[i + 1][0] - a) if i + 1 < len(rows) else 1, asm)
            for i, (a, asm) in enumerate(rows)]


GLIBC_231 = """
0xf11c0 <+0>:	mov    $0xc,%eax
0xf11c5 <+5>:	syscall
0xf11c7 <+7>:	cmp    $0xfffffffffffff000,%rax
0xf11cd <+13>:	ja     0xf11e8 <__brk+40>
0xf11cf <+15>:	mov    0xdccf2(%rip),%rdx        # 0x1cdec8
0xf11d6 <+22>:	mov    %rax,(%rdx)
0xf11d9 <+25>:	cmp    %rax,%rdi
0xf11dc <+28>:	ja     0xf1208 <__brk+72>
0xf11de <+30>:	xor    %eax,%eax
0xf11e0 <+32>:	ret
0xf11e1 <+33>:	nopl   0x0(%rax)
0xf11e8 <+40>:	mov    0xdcc81(%rip),%rdx        # 0x1cde70
0xf11ef <+47>:	neg    %eax
0xf11f1 <+49>:	mov    %eax,%fs:(%rdx)
0xf11f4 <+52>:	mov    0xdcccd(%rip),%rax        # 0x1cdec8
0xf11fb <+59>:	movq   $0xffffffffffffffff,(%rax)
0xf1202 <+66>:	xor    %eax,%eax
0xf1204 <+68>:	ret
0xf1205 <+69>:	nopl   (%rax)
0xf1208 <+72>:	mov    0xdcc61(%rip),%rax        # 0x1cde70
0xf120f <+79>:	movl   $0xc,%fs:(%rax)
0xf1216 <+86>:	mov    $0xffffffff,%eax
0xf121b <+91>:	ret
"""

GLIBC_241 = """
0x105770 <+0>:	mov    $0xc,%eax
0x105775 <+5>:	syscall
0x105777 <+7>:	mov    0xdf6d2(%rip),%rdx        # 0x1e4e50
0x10577e <+14>:	mov    %rax,(%rdx)
0x105781 <+17>:	cmp    %rdi,%rax
0x105784 <+20>:	jb     0x105790 <__brk+32>
0x105786 <+22>:	xor    %eax,%eax
0x105788 <+24>:	ret
0x105789 <+25>:	nopl   0x0(%rax)
0x105790 <+32>:	mov    0xdf659(%rip),%rax        # 0x1e4df0
0x105797 <+39>:	movl   $0xc,%fs:(%rax)
0x10579e <+46>:	mov    $0xffffffff,%eax
0x1057a3 <+51>:	ret
"""

GLIBC_241_INTEL = """
0x105770 <+0>:	mov    eax,0xc
0x105775 <+5>:	syscall
0x105777 <+7>:	mov    rdx,QWORD PTR [rip+0xdf6d2]        # 0x1e4e50
0x10577e <+14>:	mov    QWORD PTR [rdx],rax
0x105781 <+17>:	cmp    rax,rdi
0x105784 <+20>:	jb     0x105790 <__brk+32>
0x105786 <+22>:	xor    eax,eax
0x105788 <+24>:	ret
"""


@pytest.mark.parametrize("text, branch", [
    (GLIBC_231, 0xf1208),  # not the -errno test's ja 0xf11e8 before it
    (GLIBC_241, 0x105790),
    (GLIBC_241_INTEL, 0x105790),
    (GLIBC_231.replace("cmp    %rax,%rdi", "cmp    %rdi,%rax").replace("ja     0xf1208", "jae    0xf1208"),
     0xf11de),  # the jump is the success path: the failure falls through
    (GLIBC_241.replace("jb     0x105790", "jbe    0x105790"), None),  # not a ENOMEM test
    (GLIBC_241.replace("cmp    %rdi,%rax", "cmp    %rsi,%rax"), None),  # not the request
    (GLIBC_241.replace("cmp    %rdi,%rax\n", "cmp    %rdi,%rax\n0x105783 <+19>:\tnop\n"), None),
    # copies of the result and of the request are followed; a copy overwritten is not
    (GLIBC_241.replace("mov    %rax,(%rdx)", "mov    %rax,%r8").replace("cmp    %rdi,%rax",
                                                                       "cmp    %rdi,%r8"), 0x105790),
    (GLIBC_241.replace("mov    $0xc,%eax", "mov    %rdi,%rbx").replace("cmp    %rdi,%rax",
                                                                        "cmp    %rbx,%rax"), 0x105790),
    (GLIBC_241.replace("mov    %rax,(%rdx)", "xor    %edi,%edi"), None),
    ("0x10 <+0>:\tcmp    %rdi,%rax\n0x13 <+3>:\tjb     0x20 <f+16>\n", None),  # no syscall
])
def test_failure_branch(text, branch):
    assert brk_failure_branch(insns(text)) == branch
