"""What the one-time store holds stays readable across versions: the kinds address the same entries
(SQL rows, Redis keys), and the records of codes, pushed requests and interactions keep their JSON
field names, so a code issued before an upgrade is redeemed after it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fingrade.oauth.authorize import AuthorizationRequest, CodeGrant, PushedRequest
from fingrade.oauth.context import Core
from fingrade.oauth.interaction import Interaction
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.protocol import dpop

SRC = Path(__file__).resolve().parents[2] / "src" / "fingrade"

# As stored: changing one orphans every entry of that kind.
STORED_KINDS = {
    "CODE": "code",
    "PAR": "par",
    "INTERACTION": "interaction",
    "TOKEN_RETRY": "token_retry",
    "DPOP_JTI": "dpop_jti",
    "ASSERTION_JTI": "assertion_jti",
    "REQUEST_OBJECT_JTI": "request_object_jti",
    "LOGIN_ADDRESS": "login_addr",
    "LOGIN_ACCOUNT": "login_acct",
    "LOGIN_ACCOUNT_ADDRESS": "login_acct_addr",
    "LOGIN_DEVICE": "login_device",
    "TOTP_STEP": "totp_step",
    "FACTOR_FAILURES": "factor_fail",
    "PASSKEY_CEREMONY": "passkey_ceremony",
    "ACCOUNT_SIGN_IN": "account_sign_in",
    "ACCOUNT_ENROLMENT": "account_enrolment",
}

# A code's record as issued by authorize.issue_code (every field written).
CODE_RECORD: dict[str, Any] = {
    "client_id": "c1",
    "redirect_uri": "https://app.example/cb",
    "scope": "openid accounts",
    "user_id": "u1",
    "auth_time": 1_800_000_000,
    "amr": ["pwd"],
    "nonce": "n-1",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
    "grant_id": "g1",
    "dpop_jkt": None,
    "authorization_details": [{"type": "account_information", "actions": ["read_balances"]}],
    "expires_at": 1_800_000_060,
    "consent_id": None,
    "linked_details_hash": None,
}

REQUEST_RECORD: dict[str, Any] = {
    "client_id": "c1",
    "redirect_uri": "https://app.example/cb",
    "scope": ["openid"],
    "state": "s",
    "nonce": None,
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
    "prompt": [],
    "max_age": None,
    "login_hint": None,
    "ui_locales": None,
    "dpop_jkt": None,
    "pushed_key": "pk",
    "authorization_details": None,
    "response_mode": "query",
    "consent_id": None,
    "acr": "urn:fingrade:acr:sca",
}


def test_kinds_keep_their_stored_values() -> None:
    assert {k.name: k.value for k in OneTimeKind} == STORED_KINDS
    assert OneTimeKind.DPOP_JTI == dpop.REPLAY_KIND  # the leaf protocol package names its own


def test_every_one_time_store_call_names_its_kind_by_the_enum() -> None:
    """No kind spelled as a literal string in a store call: one definition, no typo makes a new kind."""
    call = re.compile(r"onetime\.\w+\(\s*[\"']")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if call.search(p.read_text())]
    assert offenders == []


def test_code_record_round_trip_keeps_the_field_names() -> None:
    code = CodeGrant.from_record(CODE_RECORD)
    assert code.to_record() == CODE_RECORD
    assert code.authorization_details == CODE_RECORD["authorization_details"]


def test_code_record_without_the_later_optional_fields_is_read() -> None:
    """amr, dpop_jkt, authorization_details, consent_id and linked_details_hash may be absent (read as none)."""
    later = ("amr", "dpop_jkt", "authorization_details", "consent_id", "linked_details_hash")
    minimal = {k: v for k, v in CODE_RECORD.items() if k not in later}
    code = CodeGrant.from_record(minimal)
    assert (code.amr, code.dpop_jkt, code.authorization_details, code.consent_id, code.linked_details_hash) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_pushed_request_and_interaction_records_round_trip() -> None:
    pushed = {"client_id": "c1", "params": {"response_type": "code", "scope": "openid"}, "expires_at": 1_800_000_090}
    assert PushedRequest.from_record(pushed).to_record() == pushed
    parked = {
        "request": REQUEST_RECORD,
        "browser": "b",
        "login_forced": False,
        "user_id": None,
        "auth_time": None,
        "pending_user_id": "u1",
        "password_at": 1_800_000_000,
        "enrolment": None,
        "approved_details": [{"type": "payment_initiation"}],
    }
    interaction = Interaction.from_record("iid", parked)
    assert interaction.request == AuthorizationRequest(**REQUEST_RECORD)
    assert interaction.to_record() == parked


def test_records_parked_before_strong_customer_authentication_are_read() -> None:
    """An interaction and request parked by the version before: no acr, no factor fields."""
    request = {k: v for k, v in REQUEST_RECORD.items() if k != "acr"}
    parked = {"request": request, "browser": "b", "login_forced": False, "user_id": None, "auth_time": None}
    interaction = Interaction.from_record("iid", parked)
    assert interaction.request.acr is None and interaction.pending_user_id is None
    assert interaction.approved_details is None and interaction.enrolment is None


def test_an_entry_stored_under_the_plain_kind_string_is_found_by_the_enum(base_core: Core, run: Any) -> None:
    """The SQL one-time store of the unit core: the enum addresses the rows a string kind wrote."""
    run(base_core.onetime.put("code", "h-compat", CODE_RECORD, 60))
    found = run(base_core.onetime.consume(OneTimeKind.CODE, "h-compat"))
    assert found is not None and CodeGrant.from_record(found[0]).grant_id == "g1" and found[1] is True
