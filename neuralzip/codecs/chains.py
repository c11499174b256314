"""Bits-back chains: the stacks, seed and payload layout every bits-back codec shares.

A bits-back codec codes its tiles, in order, as ``C`` contiguous runs, one *chain* per ANS
stack; within a chain the encoder pushes the last tile first, so the decoder pops them in
order. Chains are independent, so a codec steps all of them together (one tile of each
chain at a time), which is what makes a large archive fast; each chain costs one more first
tile's initial bits. Every stack starts from ``SEED_WORDS`` pseudo-random words (seed
``SEED``) known to both sides; the bottom words the coding never touched are stripped from
the payload and the decoder restores them, so the only overhead is the unavoidable one (a
chain's first tile's latents are paid in full), and at the end the decoder checks that each
stack is left with exactly the seed.

Payload: varint chain count ``C``, then per chain a varint count of stripped seed words and,
except for the last chain, a varint length in bytes of its stack, then the stacks (stream
bytes) in chain order.
"""

from __future__ import annotations

import numpy as np

from ..coding import CodingError, bytes_to_stream, seed_words, stream_to_bytes
from ..container import varint
from .base import PayloadError
from .tiles import read_varint

SEED, SEED_WORDS = 0x5EED, 4096


def chain_count(tiles: int, tiles_per_chain: int, max_chains: int) -> int:
    """How many chains ``tiles`` tiles are split into: one per ``tiles_per_chain`` tiles,
    at least one, at most ``max_chains``."""
    return max(1, min(max_chains, tiles // tiles_per_chain))


def chain_bounds(tiles: int, chains: int) -> list[int]:
    """Tile index where each chain starts, and the total: chain j codes tiles
    ``[bounds[j], bounds[j + 1])`` (lengths differ by at most one)."""
    return [j * tiles // chains for j in range(chains + 1)]


def longest(bounds: list[int]) -> int:
    return max(b - a for a, b in zip(bounds[:-1], bounds[1:]))


def seed() -> np.ndarray:
    """The words every stack starts from."""
    return seed_words(SEED_WORDS, SEED)


def chain_payload(stacks: list[np.ndarray]) -> bytes:
    """The payload of the chains' final stacks (their words), seed prefixes stripped."""
    start = seed()
    payload = bytearray(varint(len(stacks)))
    streams = []
    for words in stacks:
        kept = 0
        while kept < min(len(words), len(start)) and words[kept] == start[kept]:
            kept += 1
        kept = min(kept, len(words) - 1) if len(words) else 0
        payload += varint(kept)
        streams.append(stream_to_bytes(words[kept:]))
    for stream in streams[:-1]:
        payload += varint(len(stream))
    payload += b"".join(streams)
    return bytes(payload)


def parse_chain_payload(payload: bytes, max_chains: int, name: str) -> list[np.ndarray]:
    """Each chain's stack (words, seed prefix restored) from :func:`chain_payload`'s bytes;
    ``max_chains`` bounds a plausible count. Damage is a :class:`PayloadError`."""
    count, pos = read_varint(payload, 0, "chain count")
    if not 1 <= count <= max(1, max_chains):
        raise PayloadError(f"{name} payload is corrupt (chain count)")
    kept, lengths = [], []
    for _ in range(count):
        k, pos = read_varint(payload, pos, "seed length")
        if k > SEED_WORDS:
            raise PayloadError(f"{name} payload is corrupt (seed length)")
        kept.append(k)
    for _ in range(count - 1):
        length, pos = read_varint(payload, pos, "chain length")
        lengths.append(length)
    lengths.append(len(payload) - pos - sum(lengths))
    if lengths[-1] < 0:
        raise PayloadError(f"payload is truncated ({name} chains)")
    stacks = []
    try:
        for k, length in zip(kept, lengths):
            stacks.append(np.concatenate([seed()[:k], bytes_to_stream(payload[pos : pos + length])]))
            pos += length
    except CodingError as error:
        raise PayloadError(f"{name} payload is corrupt ({error})") from None
    return stacks


def check_ended_at_seed(stacks: list[np.ndarray], name: str) -> None:
    """After decoding every tile each stack must hold exactly the seed again."""
    start = seed()
    if not all(np.array_equal(words, start) for words in stacks):
        raise PayloadError(f"{name} payload is corrupt (a stack does not end at its seed)")
