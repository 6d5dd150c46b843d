"""Ids: random, 20 Crockford base32 characters, round trips single and vectorised."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrepo.errors import FormatError
from vrepo.format.ids import (
    ALPHABET,
    ID_BYTES,
    ID_CHARS,
    array_to_ids,
    bytes_to_id,
    id_to_bytes,
    ids_to_array,
    is_valid_id,
    new_id,
)


def test_new_id_shape_and_uniqueness() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for i in ids:
        assert len(i) == ID_CHARS and is_valid_id(i)
        assert set(i) <= set(ALPHABET)
        assert id_to_bytes(i) != bytes(ID_BYTES)


def test_known_values() -> None:
    assert bytes_to_id(bytes(12)) == "0" * 20
    assert bytes_to_id(b"\x00" * 11 + b"\x01") == "0" * 19 + "1"
    assert bytes_to_id(b"\xff" * 12) == "1" + "Z" * 19
    assert id_to_bytes("1" + "Z" * 19) == b"\xff" * 12


@given(st.binary(min_size=12, max_size=12))
def test_round_trip(raw: bytes) -> None:
    text = bytes_to_id(raw)
    assert is_valid_id(text)
    assert id_to_bytes(text) == raw


@given(st.lists(st.binary(min_size=12, max_size=12), max_size=50))
def test_order_matches_bytes(raws: list[bytes]) -> None:
    assert sorted(bytes_to_id(r) for r in raws) == [bytes_to_id(r) for r in sorted(raws)]


@settings(deadline=None)  # numpy's first calls in a busy worker can take a few 100 ms
@given(st.lists(st.binary(min_size=12, max_size=12), max_size=100))
def test_vectorised_round_trip(raws: list[bytes]) -> None:
    ids = [bytes_to_id(r) for r in raws]
    arr = ids_to_array(ids)
    assert arr.shape == (len(raws), ID_BYTES) and arr.dtype == np.uint8
    assert [bytes(row) for row in arr] == raws
    assert array_to_ids(arr) == ids


def test_vectorised_large() -> None:
    ids = [new_id() for _ in range(100_000)]
    assert array_to_ids(ids_to_array(ids)) == ids


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0" * 19,
        "0" * 21,
        "2" + "0" * 19,  # would need more than 96 bits
        "0" * 19 + "U",  # not in the Crockford alphabet
        "0" * 19 + "a",  # lowercase is not accepted (strict)
        "é" * 20,
        "0" * 19 + "I",
    ],
)
def test_invalid_ids(bad: str) -> None:
    assert not is_valid_id(bad)
    with pytest.raises(FormatError):
        id_to_bytes(bad)
    with pytest.raises(FormatError):
        ids_to_array([new_id(), bad])


def test_is_valid_id_non_string() -> None:
    assert not is_valid_id(None)
    assert not is_valid_id(b"0" * 20)


def test_bytes_to_id_wrong_length() -> None:
    with pytest.raises(ValueError):
        bytes_to_id(b"\x00" * 11)
    with pytest.raises(ValueError):
        array_to_ids(np.zeros((2, 11), np.uint8))
