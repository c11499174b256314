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


@pytest.mark.parametrize("codec_id, model_version, header", [(64, 6, 7), (3, 0, 11), (48, 200, 12)])
def test_compact_single_image(codec_id, model_version, header):
    """Version 3: 7 bytes for a 32x32 image of a sealing codec (local), 11 with a header
    checksum; the model named by version (0: no weights), the payload the rest of the file."""
    payload = bytes(range(256)) * 5
    entry = c.Entry("", "RGB", 32, 32, 0x12345678, payload)
    data = c.pack(c.Container(codec_id, b"\xaa\xbb\xcc\xdd", [entry], model_version=model_version))
    assert data[:2] == b"Nz" and c.has_magic(data) and len(data) - len(payload) == header
    parsed = c.unpack(data)
    assert (parsed.version, parsed.codec_id, parsed.model_version) == (3, codec_id, model_version)
    assert parsed.model_hash == (bytes(4) if model_version == 0 else None)  # a version names the weights
    back = parsed.entries[0]
    assert back.checksum == (None if codec_id in c.SEALED_CODECS else 0x12345678)
    assert (back.mode, back.width, back.height, back.payload) == ("RGB", 32, 32, payload)
    with_metadata = c.Entry("", "L", 3, 2, 7, b"xyz", b"chunk")
    parsed = c.unpack(c.pack(c.Container(3, bytes(4), [with_metadata], model_version=0)))
    assert (parsed.entries[0].metadata, parsed.entries[0].payload) == (b"chunk", b"xyz")


def test_compact_damage_is_reported():
    data = c.pack(c.Container(3, bytes(4), [c.Entry("", "RGB", 300, 2, 5, b"p" * 9)], model_version=0))
    for cut in range(1, 11):  # inside the header: truncated (the payload's own end is the codec's to check)
        with pytest.raises(c.TruncatedError):
            c.unpack(data[:cut])
    with pytest.raises(c.UnsupportedVersionError):  # a reserved flag: a newer format
        c.unpack(data[:4] + bytes([data[4] | 0x80]) + data[5:])
    with pytest.raises(c.CorruptError):
        c.unpack(data[:4] + bytes([60]) + data[5:])  # no such mode
    assert not c.has_magic(b"NZ") and not c.has_magic(b"PNG")


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
