"""The grant format pinned by a golden vector, checked by our verifier and by PyJWT, and broken by
any change of a byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import rfc8785
from joserfc.jwk import OKPKey

from controlplane.canonical import sha256_hex
from controlplane.grants.verify import GrantRejectedError, verify
from controlplane.jose import sign_compact

GOLDEN: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "assets" / "grant-golden.json").read_text()
)
AT = GOLDEN["verify_at"]
AUD = GOLDEN["claims"]["aud"]


def test_canonical_args_and_their_digests() -> None:
    assert rfc8785.dumps(GOLDEN["args"]).decode() == GOLDEN["args_canonical"]
    assert (
        GOLDEN["args_canonical"] == '{"a":"é","b":1,"c":[1e+21,0.1],"nested":{"y":null,"z":true}}'
    )
    assert sha256_hex(GOLDEN["args"]) == GOLDEN["args_sha256"]
    assert sha256_hex(GOLDEN["request_claims"]) == GOLDEN["req"]


def test_signing_the_golden_claims_gives_the_golden_token() -> None:
    key = OKPKey.import_key(GOLDEN["private_jwk"])
    payload = json.dumps(GOLDEN["claims"], separators=(",", ":")).encode()
    assert sign_compact(GOLDEN["header"], payload, key) == GOLDEN["token"]


def test_golden_token_verifies_with_our_verifier_and_with_pyjwt() -> None:
    verified = verify(
        GOLDEN["token"],
        GOLDEN["jwks"],
        audience=AUD,
        action="payments.transfer",
        resource="account:42",
        args=GOLDEN["args"],
        now=AT,
    )
    assert verified.claims == GOLDEN["claims"]
    decoded = pyjwt.decode(
        GOLDEN["token"],
        key=pyjwt.PyJWK(GOLDEN["jwks"]["keys"][0]),
        algorithms=["EdDSA"],
        audience=AUD,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert decoded == GOLDEN["claims"]


@pytest.mark.parametrize("position", range(0, 700, 7))
def test_changing_any_byte_fails(position: int) -> None:
    token = GOLDEN["token"]
    position %= len(token)
    if token[position] == ".":
        position += 1
    changed = token[:position] + ("B" if token[position] == "A" else "A") + token[position + 1 :]
    with pytest.raises(GrantRejectedError):
        verify(changed, GOLDEN["jwks"], audience=AUD, now=AT)


@pytest.mark.parametrize(
    ("expect", "code"),
    [
        ({"audience": "executor:other"}, "audience_invalid"),
        ({"action": "demo.echo"}, "action_mismatch"),
        ({"resource": "account:43"}, "resource_mismatch"),
        ({"args": {**GOLDEN["args"], "b": 2}}, "args_mismatch"),
        ({"issuer": "http://evil.example"}, "issuer_invalid"),
        ({"now": GOLDEN["claims"]["exp"] + 6}, "grant_expired"),
        ({"now": GOLDEN["claims"]["nbf"] - 6}, "grant_not_yet_valid"),
    ],
)
def test_a_grant_for_something_else_is_rejected(expect: dict[str, Any], code: str) -> None:
    arguments: dict[str, Any] = {"audience": AUD, "now": AT, **expect}
    with pytest.raises(GrantRejectedError) as caught:
        verify(GOLDEN["token"], GOLDEN["jwks"], **arguments)
    assert caught.value.code == code


def _resigned(claims: dict[str, Any], **header: Any) -> str:
    key = OKPKey.import_key(GOLDEN["private_jwk"])
    return sign_compact({**GOLDEN["header"], **header}, json.dumps(claims).encode(), key)


def test_unknown_obligations_stop_the_executor() -> None:
    token = _resigned({**GOLDEN["claims"], "obligations": {"notify": "security@example.com"}})
    with pytest.raises(GrantRejectedError) as caught:
        verify(token, GOLDEN["jwks"], audience=AUD, now=AT)
    assert caught.value.code == "obligation_not_understood"
    assert verify(token, GOLDEN["jwks"], audience=AUD, now=AT, understood_obligations=["notify"])


def test_other_jwt_types_are_not_grants() -> None:
    with pytest.raises(GrantRejectedError) as caught:
        verify(_resigned(GOLDEN["claims"], typ="JWT"), GOLDEN["jwks"], audience=AUD, now=AT)
    assert caught.value.code == "grant_type_invalid"


def test_a_key_outside_the_jwks_is_unknown() -> None:
    other = OKPKey.generate_key("Ed25519")
    token = sign_compact(
        {**GOLDEN["header"], "kid": other.thumbprint()},
        json.dumps(GOLDEN["claims"]).encode(),
        other,
    )
    with pytest.raises(GrantRejectedError) as caught:
        verify(token, GOLDEN["jwks"], audience=AUD, now=AT)
    assert caught.value.code == "key_unknown"
