"""Object ids: 12 bytes written as 20 Crockford base32 characters.

Ids name every immutable file (snapshots, manifests, chunks). The text form sorts like the
bytes (big-endian, fixed width), so listings and binary columns agree on order. Snapshot and
operation ids are random (`new_id`); chunks, manifests and history pages get *timed* ids
(`new_timed_id`): the second they were made (since `TIMED_EPOCH`, 4 bytes) and 8 random
bytes, so a listing that starts at `timed_id_floor` returns only what was written since
(garbage collection lists that way), and an id tells its object's age without a request.
Encoding and decoding go through Python ints and translation tables, and the vectorised
forms handle a whole column in one call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from vrepo.errors import FormatError

ID_BYTES = 12
ID_CHARS = 20
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# 12 bytes are 96 bits; 20 characters hold 100, so the first character carries one bit
# (it is always "0" or "1"). Single ids go through Python ints: `int(text, 32)` after
# translating to Python's own base-32 digits, and a table of all 2-character pairs.
_TO_INT_DIGITS = str.maketrans(ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]
_PAIR_SHIFTS = tuple(range(90, -1, -10))
_ALPHABET_SET = frozenset(ALPHABET)
_FIRST_CHARS = frozenset("01")
_ZERO = bytes(ID_BYTES)
# numpy tables for the vectorised forms, which work on 10-bit pairs of characters: a pair is
# one little-endian uint16 of two ASCII bytes. 0xFFFF marks a pair outside the alphabet.
_PAIR_CHARS = np.frombuffer("".join(_PAIRS).encode("ascii"), dtype="<u2")
_PAIR_VALUES = np.full(65536, 0xFFFF, dtype=np.uint16)
_PAIR_VALUES[_PAIR_CHARS] = np.arange(1024, dtype=np.uint16)
_BLOCK = 32768  # rows per vectorised step: keeps temporaries small and cache-resident


def new_id() -> str:
    """Return a fresh random id (never the all-zero id, which marks inline refs)."""
    while True:
        raw = os.urandom(ID_BYTES)
        if raw != _ZERO:
            return bytes_to_id(raw)


TIMED_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z, in seconds since the Unix epoch
_TIME_BYTES = 4  # seconds since TIMED_EPOCH: enough until 2156
_RANDOM_BYTES = ID_BYTES - _TIME_BYTES  # 64 random bits per second made


def new_timed_id(now: float | None = None) -> str:
    """A fresh id that sorts by the second it was made (``now``, Unix seconds; default the
    clock), then at random: 2**64 ids per second, never the all-zero id."""
    seconds = int(time.time() if now is None else now) - TIMED_EPOCH
    if not 0 <= seconds < 2 ** (8 * _TIME_BYTES):
        raise ValueError(f"the clock reads {now or time.time()}: timed ids start in 2020")
    return bytes_to_id(seconds.to_bytes(_TIME_BYTES, "big") + os.urandom(_RANDOM_BYTES))


def timed_id_seconds(id: str) -> int:
    """The Unix second a timed id was made in (for an id from `new_id`, a meaningless one)."""
    return int.from_bytes(id_to_bytes(id)[:_TIME_BYTES], "big") + TIMED_EPOCH


def timed_id_floor(unix_seconds: float) -> str:
    """The smallest timed id of that second: every id made then or later sorts at or after
    it, every one made before sorts before it."""
    seconds = min(max(int(unix_seconds) - TIMED_EPOCH, 0), 2 ** (8 * _TIME_BYTES) - 1)
    return bytes_to_id(seconds.to_bytes(_TIME_BYTES, "big") + bytes(_RANDOM_BYTES))


def bytes_to_id(b: bytes | bytearray | memoryview) -> str:
    """Encode 12 raw bytes as a 20-character id."""
    if len(b) != ID_BYTES:
        raise ValueError(f"an id is {ID_BYTES} bytes, got {len(b)}")
    n = int.from_bytes(b, "big")
    return "".join([_PAIRS[(n >> s) & 1023] for s in _PAIR_SHIFTS])


def is_valid_id(s: object) -> bool:
    """True if `s` is exactly 20 uppercase Crockford base32 characters encoding 12 bytes."""
    return (
        isinstance(s, str)
        and len(s) == ID_CHARS
        and s[0] in _FIRST_CHARS
        and _ALPHABET_SET.issuperset(s)
    )


def is_id_prefix(s: object, min_chars: int = 4) -> bool:
    """True if `s` (in any case) could be the first `min_chars` or more characters of an id."""
    if not isinstance(s, str) or not min_chars <= len(s) <= ID_CHARS:
        return False
    upper = s.upper()
    return upper[0] in _FIRST_CHARS and _ALPHABET_SET.issuperset(upper)


def _bad_id(what: object) -> FormatError:
    return FormatError(
        f"{what!r} is not a valid vrepo id: expected {ID_CHARS} characters from "
        f"{ALPHABET!r}, the first one 0 or 1"
    )


def id_to_bytes(id: str) -> bytes:
    """Decode a 20-character id to its 12 raw bytes; `FormatError` if it is not a valid id."""
    if not is_valid_id(id):
        raise _bad_id(id)
    return int(id.translate(_TO_INT_DIGITS), 32).to_bytes(ID_BYTES, "big")


def ids_to_array(ids: Sequence[str]) -> np.ndarray:
    """Decode many ids at once into a (n, 12) uint8 array; `FormatError` on any bad id."""
    n = len(ids)
    out = np.empty((n, ID_BYTES), dtype=np.uint8)
    if n == 0:
        return out
    try:
        text = "".join(ids).encode("ascii")
    except (UnicodeEncodeError, TypeError):
        raise _bad_id(next(s for s in ids if not is_valid_id(s))) from None
    if len(text) != n * ID_CHARS or any(len(s) != ID_CHARS for s in ids):
        raise _bad_id(next(s for s in ids if not is_valid_id(s)))
    pairs = np.frombuffer(text, dtype="<u2").reshape(n, ID_CHARS // 2)
    for start in range(0, n, _BLOCK):
        p = _PAIR_VALUES[pairs[start : start + _BLOCK]]
        if (p == 0xFFFF).any() or (p[:, 0] >= 64).any():
            raise _bad_id(next(s for s in ids[start : start + _BLOCK] if not is_valid_id(s)))
        p = p.astype(np.uint64)
        lo = p[:, 9] | (p[:, 8] << 10) | (p[:, 7] << 20) | (p[:, 6] << 30)
        lo |= (p[:, 5] << 40) | (p[:, 4] << 50) | ((p[:, 3] & 15) << 60)
        hi = (p[:, 3] >> 4) | (p[:, 2] << 6) | (p[:, 1] << 16) | (p[:, 0] << 26)
        block = out[start : start + _BLOCK]
        block[:, :4] = hi.astype(">u4").view(np.uint8).reshape(-1, 4)
        block[:, 4:] = lo.astype(">u8").view(np.uint8).reshape(-1, 8)
    return out


def array_to_ids(arr: np.ndarray) -> list[str]:
    """Encode a (n, 12) uint8 array of raw ids as a list of 20-character ids."""
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] != ID_BYTES or arr.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 array of shape (n, {ID_BYTES}), got {arr.dtype} {arr.shape}"
        )
    n = arr.shape[0]
    chars = np.empty((n, ID_CHARS // 2), dtype="<u2")
    for start in range(0, n, _BLOCK):
        raw = arr[start : start + _BLOCK]
        hi = np.ascontiguousarray(raw[:, :4]).view(">u4")[:, 0].astype(np.uint64)
        lo = np.ascontiguousarray(raw[:, 4:]).view(">u8")[:, 0]
        block = chars[start : start + _BLOCK]
        block[:, 0] = _PAIR_CHARS[hi >> 26]
        block[:, 1] = _PAIR_CHARS[(hi >> 16) & 1023]
        block[:, 2] = _PAIR_CHARS[(hi >> 6) & 1023]
        block[:, 3] = _PAIR_CHARS[((hi & 63) << 4) | (lo >> 60)]
        for k, shift in enumerate(range(50, -1, -10), start=4):
            block[:, k] = _PAIR_CHARS[(lo >> shift) & 1023]
    text = chars.tobytes().decode("ascii")
    return [text[i : i + ID_CHARS] for i in range(0, n * ID_CHARS, ID_CHARS)]
