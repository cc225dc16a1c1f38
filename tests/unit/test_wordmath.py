"""wordmath: every word of an array at once, against the same word by word."""

from array import array

from hypothesis import given, strategies as st

from gdbext.model import wordmath

WORDS = st.sampled_from(["Q", "I", "B"]).flatmap(
    lambda code: st.tuples(
        st.just(code), st.lists(st.integers(0, (1 << (8 * array(code).itemsize)) - 1), max_size=300)
    )
)


@given(WORDS, st.integers(0, 255))
def test_plus_is_each_word_plus(words, value):
    code, values = words
    top = (1 << (8 * array(code).itemsize)) - 1
    values = [min(v, top - value) for v in values]  # no word may carry out
    got = wordmath.plus(array(code, values), value)
    assert got.typecode == code and got.tolist() == [v + value for v in values]


@given(WORDS, st.integers(-(1 << 63), (1 << 64) - 1))
def test_masked_is_each_word_and(words, mask):
    code, values = words
    bits = (1 << (8 * array(code).itemsize)) - 1
    got = wordmath.masked(array(code, values), mask)
    assert got.typecode == code and got.tolist() == [v & mask & bits for v in values]


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=300))
def test_or_bytes_is_each_byte_or(pairs):
    a, b = bytes(x for x, _ in pairs), bytes(y for _, y in pairs)
    assert wordmath.or_bytes(a, b) == bytes(x | y for x, y in pairs)


def test_a_million_chunks_addresses():
    """The sizes a heap table works on: addresses near the top of user space, and ~7."""
    addrs = array("Q", range(0x7FFFF7A00010, 0x7FFFF7A00010 + 16 * 5000, 16))
    assert wordmath.plus(addrs, 16).tolist() == [a + 16 for a in addrs]
    raws = array("Q", [0x411, 0x20, 0x7, 0xFFFFFFFFFFFFFFFF])
    assert wordmath.masked(raws, ~7).tolist() == [0x410, 0x20, 0, 0xFFFFFFFFFFFFFFF8]


@given(st.lists(st.integers(0, (1 << 20) - 1), max_size=300), st.integers(0, 3),
       st.integers(0, (1 << 40)))
def test_shifted_plus_is_each_word_shifted_plus(values, shift, value):
    got = wordmath.shifted_plus(array("Q", values), shift, value)
    assert got.typecode == "Q" and got.tolist() == [(v << shift) + value for v in values]


def test_arrays_longer_than_a_slice():
    """The integers are made a slice of the array at a time: the words across slices too."""
    n = 2 * wordmath.SLICE + 123
    words = array("Q", range(0x5555_5555_0000, 0x5555_5555_0000 + 16 * n, 16))
    assert wordmath.plus(words, 16).tolist() == [w + 16 for w in words]
    assert wordmath.masked(words, ~0xFF).tolist() == [w & ~0xFF for w in words]
    idx = array("Q", range(n))
    assert wordmath.shifted_plus(idx, 3, 0x1000).tolist() == [(i << 3) + 0x1000 for i in idx]


@given(WORDS)
def test_low_bytes_is_each_words_low_byte(words):
    code, values = words
    assert wordmath.low_bytes(array(code, values)) == bytes(v & 0xFF for v in values)
