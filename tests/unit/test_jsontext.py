"""JSON in and out: exact big integers, no NaN, clear errors."""

from __future__ import annotations

import pytest

from controlplane import jsontext
from controlplane.errors import InvalidInput


def test_big_integers_stay_exact() -> None:
    text = b'{"n": 123456789012345678901234567890, "m": -9223372036854775809}'
    value = jsontext.loads(text)
    assert value == {"n": 123456789012345678901234567890, "m": -9223372036854775809}
    assert jsontext.dumps(value) == b'{"n":123456789012345678901234567890,"m":-9223372036854775809}'


def test_ordinary_documents_round_trip() -> None:
    value = {"a": [1, 2.5, True, None, "é"], "b": {}}
    assert jsontext.loads(jsontext.dumps(value)) == value


@pytest.mark.parametrize(
    "text",
    [b"", b"{", b"NaN", b'{"a": Infinity}', b"[1e400]", b'{"n": 1234567890123456789012, "x": NaN}'],
)
def test_invalid_json_is_invalid_input(text: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        jsontext.loads(text)
    assert caught.value.code == "invalid_json"
