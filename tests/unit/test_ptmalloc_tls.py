"""Finding libc's per-thread malloc pointers by their common offset below the thread pointer."""

import random

from hypothesis import given, settings, strategies as st

from gdbext.model.ptmalloc.tls import find_tls_slot, slot_values


def block(words):
    """Bytes below a thread pointer; words[0] is the word just below it (offset 8)."""
    return b"".join(w.to_bytes(8, "little") for w in reversed(words))


def test_offset_common_to_all_threads_wins():
    tc = {0x1000, 0x2000}
    blocks = {1: block([7, 0x1000, 5, 0x2000]),   # 0x2000 at offset 0x20 in thread 1 only
              2: block([9, 0x2000, 0x1000, 3]),
              3: block([1, 0, 2, 4])}              # a thread without a tcache yet: NULL
    assert find_tls_slot(blocks, tc.__contains__) == 0x10
    assert slot_values(blocks, 0x10) == {1: 0x1000, 2: 0x2000, 3: 0}


def test_a_value_that_is_not_known_rules_the_offset_out():
    known = {0x1000}
    blocks = {1: block([0x1000, 0x1000]), 2: block([0xdead, 0])}
    assert find_tls_slot(blocks, known.__contains__) == 0x10


def test_nothing_found():
    assert find_tls_slot({1: block([1, 2, 3])}, lambda v: False) is None
    assert find_tls_slot({}, lambda v: True) is None
    assert find_tls_slot({1: block([0, 0])}, lambda v: True) is None  # all NULL: no evidence


def test_blocks_of_different_lengths():
    blocks = {1: block([0x1000, 1, 2, 3, 4, 5]), 2: block([0x1000])}
    assert find_tls_slot(blocks, {0x1000}.__contains__) == 8


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(1, 300), st.binary(max_size=256), max_size=8),
       st.sets(st.integers(0, 2 ** 64 - 1), max_size=4))
def test_random_blocks_never_raise(blocks, known):
    off = find_tls_slot(blocks, known.__contains__)
    if off is not None:
        vals = slot_values(blocks, off)
        assert all(v == 0 or v in known for v in vals.values())


def test_planted_slot_is_found_among_noise():
    rng = random.Random(5)
    known = {0x5000 + 0x100 * i for i in range(10)}
    blocks = {}
    for t in range(1, 20):
        words = [rng.getrandbits(64) for _ in range(64)]
        words[9] = 0x5000 + 0x100 * (t % 10) if t % 3 else 0
        blocks[t] = block(words)
    assert find_tls_slot(blocks, known.__contains__) == 10 * 8
