"""Arithmetic on every word of an array at once, at C speed: the array's bytes read as one
big integer (little-endian), worked on with a single integer operation and written back.  A
million-chunk table adds the header size to every address, and takes the flag bits off every
size field; a map() over the array costs a Python call per word, these a few C loops in all.

The words are unsigned and side by side in the integer, so an operation that stays inside
each word (and, or; an addition that never carries out of a word) works on all of them."""

import sys
from array import array
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


def _whole(words: array) -> int:
    return int.from_bytes(words.tobytes(), "little")


def _back(value: int, like: array) -> array:
    out = array(like.typecode)
    out.frombytes(value.to_bytes(len(like) * like.itemsize, "little"))
    return out


def plus(words: array, value: int) -> array:
    """Each word + value, as a new array of the same type; every sum must fit in its word
    (an address plus a header size does)."""
    if sys.byteorder != "little" or not len(words):
        return array(words.typecode, [w + value for w in words])
    return _back(_whole(words) + _repeated(value, len(words), words.itemsize), words)


def shifted_plus(words: array, shift: int, value: int) -> array:
    """Each (word << shift) + value, as a new array of the same type; every result must fit in
    its word (a word index into a heap block, times the word size, plus the block's address
    does)."""
    if sys.byteorder != "little" or not len(words):
        return array(words.typecode, [(w << shift) + value for w in words])
    return _back((_whole(words) << shift) + _repeated(value, len(words), words.itemsize), words)


def masked(words: array, mask: int) -> array:
    """Each word & mask (a negative mask as in C: ~7 clears the low three bits), as a new array
    of the same type."""
    mask &= (1 << (8 * words.itemsize)) - 1
    if sys.byteorder != "little" or not len(words):
        return array(words.typecode, [w & mask for w in words])
    return _back(_whole(words) & _repeated(mask, len(words), words.itemsize), words)


def or_bytes(a: bytes, b: bytes) -> bytes:
    """a | b byte by byte (the same length)."""
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")
