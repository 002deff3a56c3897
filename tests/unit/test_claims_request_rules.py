"""The OIDC `claims` request parameter (OIDC Core §5.5) as far as this server reads it: the UK Open
Banking `openbanking_intent_id` naming a lodged consent (oauth/claims_request.py)."""

from __future__ import annotations

import json

import pytest

from fingrade.oauth.claims_request import intent_id
from fingrade.protocol.errors import OAuthError

pytestmark = pytest.mark.consent


def ask(value: object, where: str = "id_token") -> str:
    return json.dumps({where: {"openbanking_intent_id": {"value": value, "essential": True}}})


@pytest.mark.parametrize("where", ["id_token", "userinfo"])
def test_oidc_5_5_intent_in_either_member(where: str) -> None:
    assert intent_id(ask("aac-123_x", where)) == "aac-123_x"


def test_same_intent_in_both_members() -> None:
    both = {
        "id_token": {"openbanking_intent_id": {"value": "aac-1"}},
        "userinfo": {"openbanking_intent_id": {"value": "aac-1", "essential": False}},
    }
    assert intent_id(json.dumps(both)) == "aac-1"


@pytest.mark.parametrize(
    "raw",
    [
        '{"id_token": {"email": null, "acr": {"essential": true, "values": ["x"]}}}',
        '{"userinfo": {"openbanking_intent_id": null}}',  # §5.5.1 null: default manner, names nothing
        '{"future_member": [1, 2]}',  # unknown top-level members are ignored
        "{}",
    ],
)
def test_oidc_5_5_requests_without_an_intent_name_none(raw: str) -> None:
    assert intent_id(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "nope",
        "[]",
        "1",
        "NaN",
        '{"id_token": 1}',
        '{"userinfo": {"email": 1}}',
        '{"id_token": {"email": {"essential": 1}}}',
        '{"id_token": {"email": {"values": "x"}}}',
        '{"id_token": {"email": null}, "id_token": {"email": null}}',
        ask(7),
        ask(""),
        ask("a" * 65),
        ask("aac/../x"),
        '{"id_token": {"openbanking_intent_id": {"values": ["aac-1"]}}}',
        '{"id_token": {"openbanking_intent_id": {"value": "aac-1", "values": ["aac-1"]}}}',
        '{"id_token": {"openbanking_intent_id": {"value": "aac-1"}}, "userinfo": {"openbanking_intent_id": {"value": "aac-2"}}}',
        "[" * 5000,
    ],
)
def test_malformed_claims_are_invalid_request(raw: str) -> None:
    with pytest.raises(OAuthError) as err:
        intent_id(raw)
    assert err.value.error == "invalid_request" and err.value.status == 400
