"""glibc's version in a stripped static program: the one bare VERSION string, trusted only in a
program that holds glibc malloc's tunables and whose features agree with it."""

from gdbext.model.libcversion import version_from_bare_string

TUNABLES = b"glibc.malloc.arena_max\0glibc.malloc.tcache_count\0"
HUGETLB = b"glibc.malloc.hugetlb\0"


def test_the_one_bare_version_string():
    assert version_from_bare_string(b"\0x\0" + TUNABLES + HUGETLB + b"\x002.36\0" + b"\x001.0\0") \
        == (2, 36)
    assert version_from_bare_string(TUNABLES + b"\x002.31\0") == (2, 31)


def test_not_glibc_or_ambiguous_is_unknown():
    assert version_from_bare_string(b"\x002.36\0" + HUGETLB.replace(b"glibc.", b"other.")) is None
    assert version_from_bare_string(TUNABLES + HUGETLB + b"\x002.36\0\x002.41\0") is None
    assert version_from_bare_string(TUNABLES + HUGETLB) is None


def test_features_must_agree():
    # malloc's hugetlb tunable exists from 2.35: a 2.31 string next to it is not the version
    assert version_from_bare_string(TUNABLES + HUGETLB + b"\x002.31\0") is None
    assert version_from_bare_string(TUNABLES + b"\x002.36\0") is None
