"""The rules of strong customer authentication (docs/sca.md): TOTP codes (RFC 6238), their window and
replay, recovery codes, throttled guessing, acr/amr (OIDC Core §2, RFC 8176), what a request needs
(OIDC Core §3.1.2.1 acr_values, §5.5.1.1 essential acr), dynamic linking (PSD2 RTS Art. 5), the
bank's check before a payment, and re-authentication of long-lived access (PSD2 RTS Art. 10)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.details import payment
from support.memory_core import Clock, memory_core

from fingrade.bank.payments import PaymentRefused, check_strong_authentication
from fingrade.config import ConfigError, load_settings
from fingrade.demo import DEMO_CLIENTS
from fingrade.finance.dynamic_linking import details_hash
from fingrade.oauth import authn_level, factors, recovery_codes, sca_policy, totp
from fingrade.oauth.authn_level import ACR_PASSWORD, ACR_SCA
from fingrade.oauth.claims_request import parse
from fingrade.oauth.context import Core
from fingrade.oauth.models import Factor, FactorKind, Grant, User
from fingrade.protocol.errors import OAuthError

pytestmark = [pytest.mark.sca, pytest.mark.login]

RFC6238_SECRET = b"12345678901234567890"  # RFC 6238 Appendix B, SHA-1
NATIVE = next(c for c in DEMO_CLIENTS if c.client_id == "demo-native")
_LOOP = asyncio.new_event_loop()


def run(coro: Any) -> Any:
    return _LOOP.run_until_complete(coro)


# -- TOTP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "code"),
    [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_rfc6238_appendix_b_vectors_at_six_digits(t: int, code: str) -> None:
    """RFC 6238 Appendix B (SHA-1): the last six digits of the eight-digit test values."""
    assert totp.code_at(RFC6238_SECRET, t) == code


def test_rfc6238_5_2_one_step_either_side_is_accepted_and_no_further() -> None:
    now = 1_800_000_015
    step = now // 30
    for delta in (-1, 0, 1):
        assert totp.matching_step(RFC6238_SECRET, totp.code_at(RFC6238_SECRET, now + 30 * delta), now) == step + delta
    for delta in (-2, 2):
        assert totp.matching_step(RFC6238_SECRET, totp.code_at(RFC6238_SECRET, now + 30 * delta), now) is None


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12345a", "１２３４５６", " 123456", "²34567"])
def test_malformed_codes_match_nothing(typed: str) -> None:
    assert totp.matching_step(RFC6238_SECRET, typed, 1_800_000_000) is None


def test_codes_typed_with_a_space_are_read() -> None:
    assert totp.normalise("287 082") == "287082"


def test_enrolment_key_and_uri_are_what_authenticator_apps_read() -> None:
    secret = bytes(range(20))
    assert totp.manual_key(secret).replace(" ", "") == "AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT"
    uri = totp.provisioning_uri(secret, "alice", "Fingrade Bank")
    assert uri.startswith("otpauth://totp/Fingrade%20Bank:alice?") and "digits=6" in uri and "period=30" in uri


# -- recovery codes --------------------------------------------------------------------------------


def test_recovery_codes_are_distinct_and_read_back_however_typed() -> None:
    codes = recovery_codes.generate()
    assert len(set(codes)) == recovery_codes.COUNT == 10
    code = codes[0]
    plain = code.replace("-", "")
    for typed in (code, code.upper(), plain, f"  {code[:5]} {code[6:]} "):
        assert recovery_codes.normalise(typed) == plain
    assert recovery_codes.normalise("0O1Il-00000") == "00111" + "00000"  # misread letters (Crockford)
    for bad in ("", "short", "toolong-toolong", "uuuuu-uuuuu", "ab*de-fghjk"):
        assert recovery_codes.normalise(bad) is None


def test_recovery_code_hashes_depend_on_the_server_key() -> None:
    assert recovery_codes.code_hash(b"k" * 32, "abcde12345") != recovery_codes.code_hash(b"j" * 32, "abcde12345")


# -- acr / amr -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "amr", "acr"),
    [
        ([["pwd"]], ["pwd"], ACR_PASSWORD),
        ([["pwd"], ["otp"]], ["pwd", "otp", "mfa"], ACR_SCA),
        ([["otp"], ["pwd"], ["otp"]], ["pwd", "otp", "mfa"], ACR_SCA),
        ([["swk", "user"]], ["swk", "user", "mfa"], ACR_SCA),  # a passkey with user verification
        ([["hwk"]], ["hwk"], ACR_PASSWORD),  # possession alone is one element
        ([["otp"], ["hwk"]], ["otp", "hwk"], ACR_PASSWORD),  # two of one category are not SCA
        ([["pwd"], ["mfa"]], ["pwd"], ACR_PASSWORD),  # mfa is derived, never taken on trust
    ],
)
def test_rfc8176_amr_and_the_acr_they_add_up_to(parts: list[list[str]], amr: list[str], acr: str) -> None:
    """PSD2 RTS Art. 4: two elements of different categories (knowledge, possession, inherence)."""
    assert authn_level.combine(*parts) == amr
    assert authn_level.acr_for(amr) == acr


def test_a_stronger_acr_meets_a_weaker_request_and_unknown_values_meet_nothing() -> None:
    assert authn_level.meets(ACR_SCA, ACR_PASSWORD) and authn_level.meets(ACR_SCA, ACR_SCA)
    assert not authn_level.meets(ACR_PASSWORD, ACR_SCA)
    assert not authn_level.meets("urn:other", ACR_PASSWORD) and not authn_level.meets(ACR_SCA, "urn:other")


# -- what a request needs --------------------------------------------------------------------------


def _settings(sca: str) -> Any:
    return load_settings(overrides={"sca": sca, "issuer": "https://as.example.com"}, environ={})


FAPI = dataclasses.replace(NATIVE, profile="fapi2")


@pytest.mark.parametrize(
    ("sca", "client", "acr_values", "essential", "wanted"),
    [
        ("required", NATIVE, None, None, ACR_SCA),
        ("optional", NATIVE, None, None, ACR_PASSWORD),
        ("optional", FAPI, None, None, ACR_SCA),  # fapi2 clients get SCA by default
        ("optional", NATIVE, f"urn:x {ACR_SCA}", None, ACR_SCA),  # the first known value (§3.1.2.1)
        ("optional", NATIVE, "urn:unknown", None, ACR_PASSWORD),  # voluntary: an unknown one is ignored
        ("required", NATIVE, ACR_PASSWORD, None, ACR_SCA),  # never weaker than the deployment
        ("optional", NATIVE, None, [ACR_SCA], ACR_SCA),
        ("optional", NATIVE, None, ["urn:x", ACR_PASSWORD], ACR_PASSWORD),
        ("off", NATIVE, ACR_SCA, None, ACR_PASSWORD),
        ("off", FAPI, None, None, ACR_PASSWORD),
    ],
)
def test_oidc_core_3_1_2_1_the_acr_a_request_needs(
    sca: str, client: Any, acr_values: str | None, essential: list[str] | None, wanted: str
) -> None:
    assert sca_policy.requested_acr(_settings(sca), client, acr_values, essential) == wanted


def test_oidc_core_5_5_1_1_an_essential_acr_that_cannot_be_met_is_refused() -> None:
    with pytest.raises(OAuthError) as refused:
        sca_policy.requested_acr(_settings("off"), NATIVE, None, [ACR_SCA])
    assert refused.value.error == "unmet_authentication_requirements"
    with pytest.raises(OAuthError):
        sca_policy.requested_acr(_settings("required"), NATIVE, None, ["urn:unknown"])


def test_discovery_lists_the_acr_values_the_deployment_can_meet() -> None:
    assert sca_policy.supported(_settings("required")) == [ACR_PASSWORD, ACR_SCA]
    assert sca_policy.supported(_settings("off")) == [ACR_PASSWORD]


def test_claims_parameter_essential_acr() -> None:
    ask = {"id_token": {"acr": {"essential": True, "values": [ACR_SCA, ACR_PASSWORD]}}}
    assert parse(json.dumps(ask)).essential_acr == [ACR_SCA, ACR_PASSWORD]
    assert parse(json.dumps({"id_token": {"acr": {"essential": True, "value": ACR_SCA}}})).essential_acr == [ACR_SCA]
    assert parse(json.dumps({"id_token": {"acr": {"values": [ACR_SCA]}}})).essential_acr is None  # voluntary
    assert parse(json.dumps({"userinfo": {"acr": {"essential": True, "value": ACR_SCA}}})).essential_acr is None
    # Essential without a value: any acr will do (UK Open Banking clients ask this way).
    assert parse(json.dumps({"id_token": {"acr": {"essential": True}}})).essential_acr is None
    for bad in (
        {"essential": True, "values": [1]},
        {"essential": True, "values": []},
        {"essential": True, "value": ""},
    ):
        with pytest.raises(OAuthError):
            parse(json.dumps({"id_token": {"acr": bad}}))


def test_settings_are_checked() -> None:
    for bad in ({"sca": "maybe"}, {"sca_reauth_days": 0}, {"sca_reauth_days": 181}, {"max_factors": 0}):
        with pytest.raises(ConfigError):
            load_settings(overrides={"issuer": "https://as.example.com", **bad}, environ={})
    assert load_settings(overrides={"issuer": "https://as.example.com"}, environ={}).sca == "required"


def test_psd2_rts_art_10_long_lived_access_needs_a_fresh_authentication() -> None:
    s = _settings("required")
    grant = Grant(id="g", client_id="c", user_id="u", scope="accounts", auth_time=1_000, created_at=1_000)
    limit = 1_000 + s.sca_reauth_days * 86400
    assert not sca_policy.reauthentication_due(s, grant, limit)
    assert sca_policy.reauthentication_due(s, grant, limit + 1)
    assert not sca_policy.reauthentication_due(_settings("off"), grant, limit + 1)


def test_payments_take_a_fresh_authentication_unless_sca_is_off() -> None:
    assert sca_policy.payment_needs_fresh_sca(_settings("optional"), [payment()])
    assert not sca_policy.payment_needs_fresh_sca(_settings("required"), [{"type": "account_information"}])
    assert not sca_policy.payment_needs_fresh_sca(_settings("off"), [payment()])


# -- dynamic linking -------------------------------------------------------------------------------


def test_psd2_rts_art_5_the_hash_covers_the_payments_only_and_ignores_member_order() -> None:
    p = payment()
    reordered = dict(reversed(list(p.items())))
    assert details_hash([p]) == details_hash([reordered])
    assert details_hash([p, {"type": "account_information", "actions": ["balances"]}]) == details_hash([p])
    assert details_hash([p]) != details_hash([payment(), payment()])


@given(
    amount=st.decimals(min_value="0.01", max_value="999999.99", places=2).map(str),
    payee=st.text(min_size=1, max_size=40),
)
def test_psd2_rts_art_5_any_change_of_amount_or_payee_changes_the_hash(amount: str, payee: str) -> None:
    original = payment()
    changed = payment(instructedAmount={"currency": "EUR", "amount": amount}, creditorName=payee)
    if changed != original:
        assert details_hash([changed]) != details_hash([original])


def test_the_bank_executes_only_payments_whose_sca_covers_them() -> None:
    """PSD2 RTS Art. 5(1)(d) at the bank: RFC 9470 insufficient_user_authentication otherwise."""
    details = [payment(actions=["initiate"])]
    good = {"acr": ACR_SCA, "authorization_details": details, "linked_details_hash": details_hash(details)}
    check_strong_authentication(good, ACR_SCA)
    check_strong_authentication({}, "none")
    for bad in (
        {**good, "acr": ACR_PASSWORD},
        {**good, "linked_details_hash": None},
        {**good, "linked_details_hash": details_hash([payment(creditorName="Mallory")])},
        {**good, "authorization_details": [payment(actions=["initiate"], creditorName="Mallory")]},
    ):
        with pytest.raises(PaymentRefused) as refused:
            check_strong_authentication(bad, ACR_SCA)
        assert (refused.value.status, refused.value.error) == (401, "insufficient_user_authentication")


# -- checking codes: replay, throttling, recovery codes ------------------------------------------


@dataclasses.dataclass
class World:
    core: Core
    clock: Clock
    user: User
    secret: bytes


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    clock = Clock(1800000010)
    core = memory_core(tmp_path, clock)
    store = core.store
    user = User(id="u_alice", username="alice", password_hash="x", created_at=clock.now)
    run(store.save_user(user))
    secret = totp.new_secret()
    factor = Factor(id="f1", user_id=user.id, kind=FactorKind.TOTP, name="Phone", created_at=clock.now, secret=secret)
    assert run(store.add_factor(factor, 10))
    yield World(core, clock, user, secret)


def _verify(w: World, typed: str) -> factors.Verified | factors.Refused:
    return run(factors.verify_code(w.core, w.user.id, typed, "192.0.2.1"))


def test_rfc6238_5_2_a_code_is_accepted_once(world: World) -> None:
    code = totp.code_at(world.secret, world.clock.now)
    assert _verify(world, code) == factors.Verified(("otp",), "f1")
    replayed = _verify(world, code)
    assert isinstance(replayed, factors.Refused) and replayed.status == 401 and "used already" in replayed.message
    world.clock.now += 30  # the same code is still inside the window one step later: still refused
    assert isinstance(_verify(world, code), factors.Refused)
    assert _verify(world, totp.code_at(world.secret, world.clock.now)) == factors.Verified(("otp",), "f1")


def test_concurrent_submissions_of_one_code_succeed_once(world: World) -> None:
    code = totp.code_at(world.secret, world.clock.now)

    async def both() -> list[Any]:
        return list(await asyncio.gather(*(factors.verify_code(world.core, "u_alice", code, "ip") for _ in range(5))))

    results = run(both())
    assert sum(isinstance(r, factors.Verified) for r in results) == 1


def test_wrong_codes_are_throttled_like_passwords(world: World) -> None:
    free = world.core.settings.login_max_failures_per_account_address
    right = totp.code_at(world.secret, world.clock.now)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(free):
        assert getattr(_verify(world, wrong), "status", None) == 401
    throttled = _verify(world, right)  # even the right code waits: the counter is reserved first
    assert isinstance(throttled, factors.Refused) and throttled.status == 429 and throttled.retry_after
    world.clock.now += throttled.retry_after
    assert isinstance(_verify(world, totp.code_at(world.secret, world.clock.now)), factors.Verified)
    audit = [e["event"] for e in world.core.store.audit_events]  # type: ignore[attr-defined]
    assert "second_factor_throttled" in audit and "second_factor_failed" in audit


def test_recovery_codes_work_once_each(world: World) -> None:
    codes = run(factors.renew_recovery_codes(world.core, world.user.id))
    used = _verify(world, codes[0].upper())
    assert isinstance(used, factors.Verified) and used.factor_id == "recovery" and used.recovery_codes_left == 9
    assert isinstance(_verify(world, codes[0]), factors.Refused)
    assert isinstance(_verify(world, codes[1]), factors.Verified)
    run(factors.renew_recovery_codes(world.core, world.user.id))
    assert isinstance(_verify(world, codes[2]), factors.Refused)  # renewed: the old ones are gone


def test_another_customers_code_does_not_work(world: World) -> None:
    other = totp.new_secret()
    assert isinstance(_verify(world, totp.code_at(other, world.clock.now)), factors.Refused)


def test_enrolment_needs_a_code_from_the_app_and_gives_recovery_codes_once(world: World) -> None:
    run(world.core.store.reset_factors(world.user.id))
    offered = factors.new_enrolment()
    wrong = run(factors.confirm_totp(world.core, world.user.id, offered, "000000", "Phone", "ip"))
    assert isinstance(wrong, factors.Refused) or totp.code_at(offered.secret, world.clock.now) == "000000"
    done = run(
        factors.confirm_totp(
            world.core, world.user.id, offered, totp.code_at(offered.secret, world.clock.now), " My\x00 phone ", "ip"
        )
    )
    assert isinstance(done, factors.Enrolled) and done.recovery_codes and len(done.recovery_codes) == 10
    assert done.factor.name == "My phone"
    # The code that confirmed the enrolment does not also sign in (RFC 6238 §5.2).
    assert isinstance(_verify(world, totp.code_at(offered.secret, world.clock.now)), factors.Refused)
    second = factors.new_enrolment()
    again = run(
        factors.confirm_totp(world.core, world.user.id, second, totp.code_at(second.secret, world.clock.now), "", "ip")
    )
    assert isinstance(again, factors.Enrolled) and again.recovery_codes is None  # not the first factor
    assert again.factor.name == "Authenticator app"


def test_enrolment_stops_at_the_factor_limit(world: World) -> None:
    world.core.settings.max_factors = 1
    offered = factors.new_enrolment()
    refused = run(
        factors.confirm_totp(
            world.core, world.user.id, offered, totp.code_at(offered.secret, world.clock.now), "", "ip"
        )
    )
    assert isinstance(refused, factors.Refused) and refused.status == 409


def test_an_offered_secret_is_sealed_to_its_interaction(world: World) -> None:
    offered = factors.new_enrolment()
    record = offered.to_record(world.core, "iid-1")
    assert factors.TotpEnrolment.from_record(world.core, record, "iid-1") == offered
    assert factors.TotpEnrolment.from_record(world.core, record, "iid-2") is None
    assert factors.TotpEnrolment.from_record(world.core, "not base64 !", "iid-1") is None


def test_removing_the_last_factor_removes_the_recovery_codes(world: World) -> None:
    run(factors.renew_recovery_codes(world.core, world.user.id))
    assert not run(factors.remove(world.core, "someone-else", "f1", "ip"))
    assert run(factors.remove(world.core, world.user.id, "f1", "ip"))
    assert run(world.core.store.recovery_codes_left(world.user.id)) == 0


def test_operator_reset_is_audited(world: World) -> None:
    assert run(factors.reset(world.core, world.user.id, by="cli")) == 1
    events = world.core.store.audit_events  # type: ignore[attr-defined]
    assert events[-1]["event"] == "factors_reset" and events[-1]["detail"] == {"removed": 1, "by": "cli"}
