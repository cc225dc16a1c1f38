"""Arithmetic on every word of an array at once, at C speed: the array's bytes read as one
big integer (little-endian), worked on with a single integer operation and written back.  A
million-chunk table adds the header size to every address, and takes the flag bits off every
size field; a map() over the array costs a Python call per word, these a few C loops in all.

The words are unsigned and side by side in the integer, so an operation that stays inside
each word (and, or; an addition that never carries out of a word) works on all of them."""

import sys
from array import array
from operator import add, and_
from typing import Dict, Tuple

_REPEATED: Dict[Tuple[int, int, int], int] = {}


def _repeated(value: int, count: int, width: int) -> int:
    """`value` in each of `count` words of `width` bytes, as one integer (kept per shape: a
    table asks for the same one at every batch)."""
    key = (value, count, width)
    got = _REPEATED.get(key)
    if got is None:
        if len(_REPEATED) > 64:
            _REPEATED.clear()
        got = _REPEATED[key] = int.from_bytes(value.to_bytes(width, "little") * count, "little")
    return got


SLICE = 1 << 14  # words per integer: the integers stay small (a million-word array is not
# copied four times over at once), and cost no more per word


def _apply(words: array, shift: int, value: int, op) -> array:
    """op(int of a slice of `words` << shift, `value` in each of its words), slice by slice."""
    out = array(words.typecode)
    w = words.itemsize
    for lo in range(0, len(words), SLICE):
        part = words[lo : lo + SLICE]
        got = op(int.from_bytes(part.tobytes(), "little") << shift, _repeated(value, len(part), w))
        out.frombytes(got.to_bytes(len(part) * w, "little"))
    return out


def plus(words: array, value: int) -> array:
    """Each word + value, as a new array of the same type; every sum must fit in its word
    (an address plus a header size does)."""
    return shifted_plus(words, 0, value)


def shifted_plus(words: array, shift: int, value: int) -> array:
    """Each (word << shift) + value, as a new array of the same type; every result must fit in
    its word (a word index into a heap block, times the word size, plus the block's address
    does)."""
    if sys.byteorder != "little":
        return array(words.typecode, [(w << shift) + value for w in words])
    return _apply(words, shift, value, add)


def masked(words: array, mask: int) -> array:
    """Each word & mask (a negative mask as in C: ~7 clears the low three bits), as a new array
    of the same type."""
    mask &= (1 << (8 * words.itemsize)) - 1
    if sys.byteorder != "little":
        return array(words.typecode, [w & mask for w in words])
    return _apply(words, 0, mask, and_)


def low_bytes(words: array) -> bytes:
    """The least significant byte of each word (where a size field keeps its flag bits)."""
    w = words.itemsize
    return words.tobytes()[(0 if sys.byteorder == "little" else w - 1) :: w]


def or_bytes(a: bytes, b: bytes) -> bytes:
    """a | b byte by byte (the same length)."""
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")
