"""fakechunks' words for where --near's ADDRESS lies in a candidate."""

from gdbext.views.fakechunks import near_words


def test_near_words_name_the_header_field_or_the_user_offset():
    """From the candidate's user pointer, on x86-64 (SIZE_SZ 8) and i386 (4)."""
    assert [near_words(o, 8) for o in (-16, -12, -8, -3, 0, 0x18)] == [
        "prev_size", "prev_size+0x4", "size field", "size field+0x5", "user+0x0", "user+0x18"]
    assert [near_words(o, 4) for o in (-8, -4, 4)] == ["prev_size", "size field", "user+0x4"]
