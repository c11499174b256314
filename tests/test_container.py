"""The .nzip container: layout, size, and a distinct error for each kind of damage."""

import pytest

from neuralzip import container as c


def _single(payload=b"\x01\x02\x03" * 400):
    return c.pack(c.Container(16, b"\xaa\xbb\xcc\xdd", [c.Entry("", "RGB", 32, 32, 0x12345678, payload)]))


def test_single_round_trip_and_header_size():
    payload = bytes(range(256)) * 5
    data = _single(payload)
    assert len(data) - len(payload) <= 24
    parsed = c.unpack(data)
    assert parsed.codec_id == 16 and parsed.model_hash == b"\xaa\xbb\xcc\xdd" and not parsed.archive
    entry = parsed.entries[0]
    assert (entry.mode, entry.width, entry.height, entry.checksum, entry.payload) == ("RGB", 32, 32, 0x12345678, payload)


@pytest.mark.parametrize("chained", [False, True])
def test_archive_round_trip(chained):
    entries = [c.Entry(f"img{i}.png", mode, 3 + i, 5, i * 77, b"" if chained else bytes([i]) * i)
               for i, mode in enumerate(["RGB", "L", "RGBA", "P"])]
    original = c.Container(48, b"\x01\x02\x03\x04", entries, archive=True, chained_payload=b"shared" if chained else None)
    parsed = c.unpack(c.pack(original))
    assert parsed.archive and parsed.chained == chained
    assert [(e.name, e.mode, e.width, e.height, e.checksum, e.payload) for e in parsed.entries] == \
        [(e.name, e.mode, e.width, e.height, e.checksum, e.payload) for e in entries]
    if chained:
        assert parsed.chained_payload == b"shared"


def test_archive_entries_of_the_same_shape_cost_five_bytes():
    shapes = [("RGB", 32, 32), ("RGB", 32, 32), ("RGB", 32, 32), ("L", 32, 32), ("L", 32, 32), ("RGB", 32, 32)]
    entries = [c.Entry("", mode, w, h, 1000 + i) for i, (mode, w, h) in enumerate(shapes)]
    data = c.pack(c.Container(48, b"\x00" * 4, entries, archive=True, chained_payload=b"x"))
    parsed = c.unpack(data)
    assert [(e.mode, e.width, e.height, e.checksum) for e in parsed.entries] == \
        [(mode, w, h, 1000 + i) for i, (mode, w, h) in enumerate(shapes)]
    # 11 prefix + count + chained flag + 3 new shapes x (1 tag + 3 shape + 4) + 3 repeats x 5 + payload 2
    assert len(data) == 13 + 3 * 8 + 3 * 5 + 2
    first_refers_back = bytearray(data)
    first_refers_back[13] |= 1  # the first image's tag claims "same shape as the previous image"
    with pytest.raises(c.CorruptError, match="first image"):
        c.unpack(bytes(first_refers_back))


def test_errors_are_specific():
    data = _single()
    with pytest.raises(c.NotNzipError):
        c.unpack(b"")
    with pytest.raises(c.NotNzipError):
        c.unpack(b"\x89PNG\r\n\x1a\n" + data)
    with pytest.raises(c.UnsupportedVersionError):
        c.unpack(data[:4] + bytes([99]) + data[5:])
    with pytest.raises(c.TruncatedError):
        c.unpack(data[:-1])
    with pytest.raises(c.CorruptError):
        c.unpack(data + b"\x00")


def test_every_truncation_is_reported_as_such():
    data = _single(b"x" * 50)
    for cut in range(1, len(data)):
        with pytest.raises(c.TruncatedError):
            c.unpack(data[:cut])


def test_huge_sides_and_counts_are_refused_before_allocating():
    prefix = c.MAGIC + bytes([c.FORMAT_VERSION, 1]) + b"\0\0\0\0"
    huge_side = prefix + bytes([3]) + b"\xff\xff\xff\xff\x0f" + b"\x01"
    with pytest.raises(c.CorruptError):
        c.unpack(huge_side)
    huge_count = prefix + bytes([c.ARCHIVE_FLAG]) + b"\xff\xff\xff\x07" + b"\x00"
    with pytest.raises(c.FormatError):
        c.unpack(huge_count)


def test_a_damaged_length_is_called_corrupt_not_truncated():
    data = bytearray(_single(b"x" * 50))
    at = data.index(bytes([50]) + b"x" * 50)  # the payload length varint
    data[at : at + 1] = b"\xff\xff\x03"  # ~65,000 bytes announced, 50 present
    with pytest.raises(c.CorruptError, match="corrupt header: the payload length says"):
        c.unpack(bytes(data))
