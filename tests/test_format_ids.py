"""Ids: random, 20 Crockford base32 characters, round trips single and vectorised."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vrepo.errors import FormatError
from vrepo.format import ids
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


def test_timed_ids_sort_by_the_second_they_were_made():
    made = [ids.new_timed_id(now) for now in (1.7e9, 1.7e9 + 1, 1.7e9 + 1, 2.5e9, 4e9)]
    assert all(ids.is_valid_id(i) for i in made)
    assert made[0] < made[1] and made[1] != made[2] and max(made[1:3]) < made[3] < made[4]
    assert [ids.timed_id_seconds(i) for i in made] == [1.7e9, 1.7e9 + 1, 1.7e9 + 1, 2.5e9, 4e9]
    assert ids.timed_id_seconds(ids.new_timed_id()) == pytest.approx(time.time(), abs=2)


def test_timed_id_floor_separates_before_from_after():
    floor = ids.timed_id_floor(1.7e9 + 0.5)
    assert (
        ids.new_timed_id(1.7e9 - 1)
        < floor
        <= ids.new_timed_id(1.7e9)
        < ids.timed_id_floor(1.7e9 + 1)
    )
    assert ids.timed_id_floor(0) == ids.timed_id_floor(ids.TIMED_EPOCH)  # clamped, not negative
    assert ids.timed_id_floor(1e12) == ids.timed_id_floor(1e13)  # and clamped at the end


def test_timed_ids_refuse_a_clock_before_2020():
    with pytest.raises(ValueError, match="2020"):
        ids.new_timed_id(1e9)


def test_timed_ids_are_random_within_a_second():
    same = {ids.new_timed_id(1.8e9) for _ in range(1000)}
    assert len(same) == 1000
    assert len({i[:7] for i in same}) == 1  # the time part is shared ...
    assert len({i[8:] for i in same}) == 1000  # ... the rest is not
