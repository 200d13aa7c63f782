"""The canonical JSON fast path is byte-identical to the `rfc8785` library, or refuses alike."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.canonical import canonical_json
from controlplane.errors import InvalidInput

keys = st.text(max_size=8)  # all of Unicode, non-BMP and surrogate-order traps included
scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=12)
floats = st.floats(allow_nan=False, allow_infinity=False)
documents = st.recursive(
    scalars | floats,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(documents)
def test_identical_to_rfc8785(document: Any) -> None:
    try:
        expected = rfc8785.dumps(document)
    except rfc8785.CanonicalizationError:
        with pytest.raises(InvalidInput):
            canonical_json(document)
        return
    assert canonical_json(document) == expected


@pytest.mark.parametrize(
    "document",
    [
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        {"a": 1.0, "b": 1e21, "c": -0.0, "d": 5e-7},
        {"n": 2**53 - 1, "m": -(2**53 - 1)},
        {"é": {"z": [True, None, "\x00\x1f\u2028"]}},
    ],
)
def test_known_traps(document: Any) -> None:
    assert canonical_json(document) == rfc8785.dumps(document)


@pytest.mark.parametrize("document", [{"n": 2**53}, {"x": float("nan")}, {"x": float("inf")}])
def test_outside_i_json_is_refused(document: Any) -> None:
    with pytest.raises(InvalidInput):
        canonical_json(document)
