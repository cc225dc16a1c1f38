"""Reader.sweep (issue 11): the lists-only walk reads a heap in large pieces but keeps few of
them while the lists run through it in one direction, since memory kept costs more than
reading it again; lists that jump to and fro read no piece more than twice."""

import random

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc.reader import PIECE, SWEEP_KEEP, Reader

BASE = 0x7F0000000000
PIECES = 64


class Counting(BytesMemory):
    """Counts the bytes read and the pieces read more than once."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.read_bytes = 0
        self.starts: list = []

    def read(self, address, size):
        self.read_bytes += size
        self.starts.append(address)
        return super().read(address, size)


def walk(order):
    mem = Counting([(BASE, bytes(PIECES * PIECE))])
    r = Reader(mem, 8)
    r.sweep([(BASE, BASE + PIECES * PIECE)])
    most = 0
    for address in order:
        base, block = r.block(address)
        assert base <= address < base + len(block)
        most = max(most, len(r._pieces))
    return mem, most


def test_a_list_in_address_order_reads_each_piece_once_and_keeps_few():
    order = [BASE + k * 0x600 for k in range(PIECES * PIECE // 0x600)][::-1]
    mem, most = walk(order)
    assert most == SWEEP_KEEP
    assert mem.read_bytes == PIECES * PIECE
    mem, most = walk(order + order)  # two lists, each over the whole heap
    assert mem.read_bytes <= 2 * PIECES * PIECE


def test_a_list_that_jumps_reads_no_piece_more_than_twice():
    rnd = random.Random(11)
    order = [BASE + rnd.randrange(PIECES * PIECE) for _ in range(20_000)]
    mem, most = walk(order)
    assert mem.read_bytes <= 2 * PIECES * PIECE
    assert most <= PIECES


def test_shrink_drops_the_pieces():
    mem = Counting([(BASE, bytes(4 * PIECE))])
    r = Reader(mem, 8)
    r.sweep([(BASE, BASE + 4 * PIECE)])
    assert r.read(BASE + PIECE + 8, 8) == bytes(8)
    r.shrink(256)
    assert not r._pieces
    assert r.read(BASE + 8, 8) == bytes(8)  # from a block now
    assert mem.starts[-1] == BASE
