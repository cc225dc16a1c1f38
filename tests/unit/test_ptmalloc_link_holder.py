"""A list link that leads to no chunk is a problem of the chunk that holds the link (issue 13:
glibc 2.43's tcache, where heap_corrupt's fastbin_loop lands, named the address it led to).
A first link, held by the bin's own slot, stays at its target: test_ptmalloc_problem_kinds."""

import pytest

from gdbext.model.ptmalloc import ProblemKind
from test_ptmalloc_builder import standard_heap


@pytest.mark.parametrize("version", [(2, 36), (2, 43)])
def test_not_a_chunk_is_at_the_chunk_whose_link_is_bad(version):
    b, c = standard_heap(version)
    head, second = c["tcache"][1], c["tcache"][0]  # tcache[1]: head -> second
    target = second - 16  # the chunk header before: no chunk starts there
    b.img.w(second + 16, b.protect(second + 16, target + 16))  # second's next, as a user pointer
    problems = b.analyze().problems
    hits = [p for p in problems if p.kind is ProblemKind.NOT_A_CHUNK]
    assert [p.address for p in hits] == [second], problems
    assert f"holds {target:#x}," in hits[0].message
    assert head not in [p.address for p in hits]

