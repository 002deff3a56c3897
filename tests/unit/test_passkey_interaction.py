"""Passkeys in the sign-in flow (oauth/interaction.py): the options a page offers and the decisions on
the browser's answer, on the in-memory stores with a software authenticator. As the first step on
the login page (a discoverable credential), as the second factor after a password, to confirm a
payment (dynamic linking), and enrolled at the enrolment step. Every refusal is a page with a message
and a 4xx status, never an exception; the ceremonies' own rules are tested in test_passkeys.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fido2.utils import websafe_decode, websafe_encode
from support.passkey_device import UP_UV, Flag, SoftAuthenticator

from fingrade.config import load_settings
from fingrade.demo import DEMO_CLIENTS
from fingrade.finance.dynamic_linking import details_hash
from fingrade.oauth import authn_level, passkey_steps, passkeys
from fingrade.oauth import interaction as flow
from fingrade.oauth.authorize import AuthorizationRequest
from fingrade.oauth.context import Core
from fingrade.oauth.models import Factor, FactorKind, Session, User
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.passwords import Passwords
from fingrade.oauth.signing_keys import KeyManager
from fingrade.protocol.crypto import token_hash
from fingrade.protocol.sealing import Sealer
from fingrade.store.memory import MemoryDurableStore, MemoryOneTimeStore

pytestmark = [pytest.mark.sca, pytest.mark.login, pytest.mark.payments]

ISSUER = "https://localhost:8443"  # the software authenticator's default origin
CLIENT = next(c for c in DEMO_CLIENTS if c.client_id == "demo-backend")
BROWSER = "browser-hash"
IP = "192.0.2.7"
PASSWORD = "correct horse battery staple"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "25.00"},
    "creditorName": "Acme Ltd",
    "creditorAccount": {"iban": "GB33BUKB20201555555555"},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> int:
        return self.now


_LOOP = asyncio.new_event_loop()


def run(coro: Any) -> Any:
    return _LOOP.run_until_complete(coro)


@dataclasses.dataclass
class World:
    core: Core
    store: MemoryDurableStore
    clock: Clock
    user: User

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.store.audit_events if e["event"] == name]

    def park(self, details: list[dict[str, Any]] | None = None) -> flow.Interaction:
        req = AuthorizationRequest(
            client_id=CLIENT.client_id,
            redirect_uri=CLIENT.redirect_uris[0],
            scope=["openid"],
            state="st",
            code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            code_challenge_method="S256",
            authorization_details=details,
            acr=authn_level.ACR_SCA,
        )
        parked = run(flow.start(self.core, req, None, BROWSER))
        assert isinstance(parked, flow.Parked)
        return run(flow.load(self.core, parked.interaction_id, BROWSER))

    def reload(self, interaction: flow.Interaction) -> flow.Interaction:
        return run(flow.load(self.core, interaction.id, BROWSER))

    def enrol(self, auth: SoftAuthenticator, user: User | None = None) -> Factor:
        """A passkey the customer enrolled before (straight through the ceremony rules)."""
        owner = user or self.user
        rp = passkey_steps.relying_party(self.core)
        options, state = passkeys.registration_options(rp, owner.id, owner.username, owner.name, [], self.clock.now)
        factor = passkeys.complete_registration(
            rp, state, auth.create(options), "Phone", "f-" + os.urandom(4).hex(), owner.id, self.clock.now
        )
        assert run(self.store.add_factor(factor, 10))
        return factor


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    clock = Clock()
    settings = load_settings(overrides={"data_dir": str(tmp_path), "issuer": ISSUER, "sca": "required"}, environ={})
    store = MemoryDurableStore(clock)
    passwords = Passwords(1, 8192, 1)
    core = Core(
        settings=settings,
        store=store,
        onetime=MemoryOneTimeStore(clock),
        keys=KeyManager(store),
        server_key=os.urandom(32),
        passwords=passwords,
        clock=clock,
        sealer=Sealer(os.urandom(32)),
    )
    run(core.keys.ensure_keys())
    run(store.save_client(dataclasses.replace(CLIENT, created_at=clock.now, updated_at=clock.now)))
    user = User(
        id="u_alice", username="alice", password_hash=passwords.hash(PASSWORD), name="Alice", created_at=clock.now
    )
    run(store.save_user(user))
    yield World(core, store, clock, user)


def _login_options(w: World, interaction: flow.Interaction) -> dict[str, Any]:
    options = run(passkey_steps.passkey_offer(w.core, flow.ShowLogin(interaction, CLIENT)))
    assert options is not None
    return options


def _factor_step(w: World, interaction: flow.Interaction, session: Session | None = None) -> flow.ShowSecondFactor:
    step = run(flow.resume(w.core, w.reload(interaction), session))
    assert isinstance(step, flow.ShowSecondFactor), step
    return step


def _password(w: World, interaction: flow.Interaction) -> flow.Interaction:
    due = run(flow.login(w.core, interaction, "alice", PASSWORD, IP))
    assert isinstance(due, flow.SecondFactorDue), due
    return w.reload(interaction)


# -- the login page: a passkey as the first step ---------------------------------------------------


def test_login_page_asks_for_any_discoverable_passkey_with_user_verification(world: World) -> None:
    """W3C WebAuthn §5.5 / §5.4.4: no allowCredentials (the authenticator offers its discoverable
    credentials for this RP ID) and userVerification `required`; the RP ID is the issuer's host."""
    options = _login_options(world, world.park())
    assert options["rpId"] == "localhost"
    assert options["userVerification"] == "required"
    assert not options.get("allowCredentials")


def test_login_page_offers_no_passkey_when_sca_is_off(world: World) -> None:
    off = dataclasses.replace(world.core, settings=dataclasses.replace(world.core.settings, sca="off"))
    assert run(passkey_steps.passkey_offer(off, flow.ShowLogin(world.park(), CLIENT))) is None


def test_passkey_first_signs_in_strongly_without_a_password(world: World) -> None:
    """A passkey with user verification is two SCA elements in one gesture: the session's amr is
    hwk + user + mfa, its acr the SCA class, and the login is audited with that amr. W3C WebAuthn
    §7.2 step 6: the user handle of a discoverable credential names its owner."""
    auth = SoftAuthenticator()
    factor = world.enrol(auth)
    interaction = world.park()
    answer = auth.get(_login_options(world, interaction))
    signed_in = run(passkey_steps.passkey_sign_in(world.core, interaction, json.dumps(answer), IP))
    assert isinstance(signed_in, flow.SignedIn), signed_in
    assert signed_in.session.amr == ["hwk", "user", "mfa"]
    assert authn_level.acr_for(signed_in.session.amr) == authn_level.ACR_SCA
    assert world.events("login")[-1]["detail"] == {"amr": ["hwk", "user", "mfa"]}
    assert world.events("passkey_accepted")[-1]["detail"]["factor"] == factor.id
    assert world.reload(interaction).user_id == world.user.id
    stored = run(world.store.factor_by_credential(auth.credential_id))
    assert stored is not None and stored.sign_count == auth.counter and stored.last_used_at == world.clock.now


def test_the_challenge_answers_once(world: World) -> None:
    """W3C WebAuthn §13.4.3: a challenge is used once; the same answer again finds no ceremony."""
    auth = SoftAuthenticator()
    world.enrol(auth)
    interaction = world.park()
    answer = json.dumps(auth.get(_login_options(world, interaction)))
    assert isinstance(run(passkey_steps.passkey_sign_in(world.core, interaction, answer, IP)), flow.SignedIn)
    again = run(passkey_steps.passkey_sign_in(world.core, world.reload(interaction), answer, IP))
    assert isinstance(again, flow.ShowLogin) and again.status == 400 and again.error


def test_a_disabled_customer_never_signs_in_with_a_passkey(world: World) -> None:
    auth = SoftAuthenticator()
    world.enrol(auth)
    run(world.store.set_user_disabled(world.user.id, True, world.clock.now))
    interaction = world.park()
    refused = run(
        passkey_steps.passkey_sign_in(
            world.core, interaction, json.dumps(auth.get(_login_options(world, interaction))), IP
        )
    )
    assert isinstance(refused, flow.ShowLogin) and refused.status == 401
    assert not world.events("login")


def test_an_unknown_passkey_is_refused(world: World) -> None:
    interaction = world.park()
    stranger = SoftAuthenticator()
    stranger.user_handle = world.user.id.encode()
    refused = run(
        passkey_steps.passkey_sign_in(
            world.core, interaction, json.dumps(stranger.get(_login_options(world, interaction))), IP
        )
    )
    assert isinstance(refused, flow.ShowLogin) and refused.status == 401
    assert world.events("passkey_failed")[-1]["detail"] == {"reason": "unknown credential"}


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "{",
        "[]",
        "null",
        '"text"',
        "x" * 9000,
        "[" * 5000,
        '{"rawId": 5}',
        '{"rawId": "!!"}',
        '{"id": "a", "rawId": "b"}',
    ],
    ids=[
        "empty",
        "broken",
        "array",
        "null",
        "string",
        "too_long",
        "deep",
        "raw_id_number",
        "raw_id_not_b64",
        "ids_differ",
    ],
)
def test_a_malformed_answer_is_a_400_page_never_an_exception(world: World, credential: str) -> None:
    interaction = world.park()
    _login_options(world, interaction)
    refused = run(passkey_steps.passkey_sign_in(world.core, interaction, credential, IP))
    assert isinstance(refused, flow.ShowLogin) and refused.status == 400 and refused.error


def test_a_counter_that_did_not_go_up_is_a_suspected_clone(world: World) -> None:
    """W3C WebAuthn §6.1.1 and §7.2 step 22: a signature counter at or below the stored one means
    the credential may have been cloned: refused, and audited."""
    auth = SoftAuthenticator(counter=7)
    world.enrol(auth)
    interaction = world.park()
    answer = auth.get(_login_options(world, interaction), counter_step=0)
    refused = run(passkey_steps.passkey_sign_in(world.core, interaction, json.dumps(answer), IP))
    assert isinstance(refused, flow.ShowLogin) and refused.status == 403
    assert world.events("passkey_clone_suspected")
    assert not world.events("login")


def test_a_counter_lost_to_a_concurrent_sign_in_is_a_suspected_clone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W3C WebAuthn §6.1.1: the counter is compare-and-set (FactorStore.factor_used); a sign-in that
    read the counter before another one raised it past this answer's value is refused."""
    auth = SoftAuthenticator()
    factor = world.enrol(auth)
    stale = dataclasses.replace(factor)
    run(world.store.factor_used(factor.id, world.clock.now, 10))  # another sign-in, meanwhile

    async def read_before_the_other(credential_id: bytes) -> Factor | None:
        return stale

    monkeypatch.setattr(world.store, "factor_by_credential", read_before_the_other)
    interaction = world.park()
    refused = run(
        passkey_steps.passkey_sign_in(
            world.core, interaction, json.dumps(auth.get(_login_options(world, interaction))), IP
        )
    )
    assert isinstance(refused, flow.ShowLogin) and refused.status == 403
    assert world.events("passkey_clone_suspected")[-1]["detail"] == {"reason": "counter lost the compare-and-set"}


# -- the second factor after a password --------------------------------------------------------------


def test_second_factor_step_asks_for_the_customers_own_passkeys(world: World) -> None:
    """W3C WebAuthn §5.5 allowCredentials: the customer is known after the password, so only their
    passkeys are asked for (and TOTP factors are not listed)."""
    auth = SoftAuthenticator()
    world.enrol(auth)
    step = _factor_step(world, _password(world, world.park()))
    options = run(passkey_steps.passkey_offer(world.core, step))
    assert options is not None
    assert [c["id"] for c in options["allowCredentials"]] == [websafe_encode(auth.credential_id)]


def test_password_then_passkey_signs_in_with_both(world: World) -> None:
    auth = SoftAuthenticator()
    world.enrol(auth)
    interaction = _password(world, world.park())
    options = run(passkey_steps.passkey_offer(world.core, _factor_step(world, interaction)))
    result = run(
        passkey_steps.passkey_second_factor(world.core, interaction, None, json.dumps(auth.get(options)), IP, "dev")
    )
    assert isinstance(result, flow.FactorAccepted) and result.signed_in is not None
    assert result.signed_in.session.amr == ["pwd", "hwk", "user", "mfa"]
    after = world.reload(interaction)
    assert after.user_id == world.user.id and after.pending_user_id is None


def test_another_customers_passkey_is_not_a_second_factor(world: World) -> None:
    """W3C WebAuthn §7.2 step 6: the credential must belong to the customer being authenticated."""
    mine, theirs = SoftAuthenticator(), SoftAuthenticator()
    world.enrol(mine)
    bob = User(id="u_bob", username="bob", password_hash="x", name="Bob", created_at=world.clock.now)
    run(world.store.save_user(bob))
    world.enrol(theirs, bob)
    interaction = _password(world, world.park())
    options = run(passkey_steps.passkey_offer(world.core, _factor_step(world, interaction)))
    result = run(
        passkey_steps.passkey_second_factor(world.core, interaction, None, json.dumps(theirs.get(options)), IP, "dev")
    )
    assert isinstance(result, flow.ShowSecondFactor) and result.status == 401 and result.error
    assert not world.events("login")


def test_wrong_passkey_answers_are_throttled_like_codes(world: World) -> None:
    """Each wrong answer counts on the customer's factor throttle before it is checked; past the
    free tries the step answers 429 with a wait."""
    auth = SoftAuthenticator()
    world.enrol(auth)
    forger = SoftAuthenticator(credential_id=auth.credential_id)  # the right id, another key
    forger.user_handle = world.user.id.encode()
    interaction = _password(world, world.park())
    statuses = []
    for _ in range(world.core.settings.login_max_failures_per_account_address + 1):
        options = run(passkey_steps.passkey_offer(world.core, _factor_step(world, interaction)))
        result = run(
            passkey_steps.passkey_second_factor(
                world.core, interaction, None, json.dumps(forger.get(options)), IP, "dev"
            )
        )
        assert isinstance(result, flow.ShowSecondFactor)
        statuses.append(result.status)
    assert statuses[:-1] == [401] * world.core.settings.login_max_failures_per_account_address
    assert statuses[-1] == 429


# -- a payment's confirmation (dynamic linking) -----------------------------------------------------


def _payment_confirmation(w: World, auth: SoftAuthenticator) -> tuple[flow.Interaction, Session, dict[str, Any]]:
    """Signed in with the passkey, consent given: the payment waits for its own authentication."""
    w.enrol(auth)
    interaction = w.park([PAYMENT])
    signed_in = run(
        passkey_steps.passkey_sign_in(w.core, interaction, json.dumps(auth.get(_login_options(w, interaction))), IP)
    )
    assert isinstance(signed_in, flow.SignedIn)
    confirming = dataclasses.replace(w.reload(interaction), approved_details=[PAYMENT])
    run(flow.save(w.core, confirming))
    step = _factor_step(w, confirming, signed_in.session)
    assert step.payment == [PAYMENT] and step.password_needed
    options = run(passkey_steps.passkey_offer(w.core, step))
    assert options is not None
    return confirming, signed_in.session, options


def test_payment_confirmed_with_a_passkey_is_linked_to_its_details(world: World) -> None:
    """PSD2 RTS Art. 5 with W3C WebAuthn §13.4.3: the challenge commits to the payment's details
    hash; the grant records that hash and the passkey. With user verification the passkey is both
    elements, so the password is not asked again."""
    auth = SoftAuthenticator()
    confirming, session, options = _payment_confirmation(world, auth)
    result = run(
        passkey_steps.passkey_second_factor(world.core, confirming, session, json.dumps(auth.get(options)), IP, "dev")
    )
    assert isinstance(result, flow.FactorAccepted) and result.redirect is not None
    code = parse_qs(urlsplit(result.redirect.url).query)["code"][0]
    record = run(world.core.onetime.get(OneTimeKind.CODE, token_hash(code)))
    assert record is not None
    grant = run(world.store.get_grant(record["grant_id"]))
    assert grant is not None
    assert grant.linked_details_hash == details_hash([PAYMENT]) == record["linked_details_hash"]
    assert grant.linked_factors == [run(world.store.factor_by_credential(auth.credential_id)).id]
    assert grant.amr == ["hwk", "user", "mfa"] and grant.acr == authn_level.ACR_SCA


def test_a_challenge_made_for_one_payment_does_not_confirm_another(world: World) -> None:
    auth = SoftAuthenticator()
    confirming, session, options = _payment_confirmation(world, auth)
    other = dict(PAYMENT, instructedAmount={"currency": "EUR", "amount": "2500.00"})
    changed = dataclasses.replace(confirming, approved_details=[other])
    run(flow.save(world.core, changed))
    result = run(
        passkey_steps.passkey_second_factor(world.core, changed, session, json.dumps(auth.get(options)), IP, "dev")
    )
    assert isinstance(result, flow.ShowSecondFactor) and result.status >= 400
    assert not world.events("payment_authenticated")


# -- enrolment -----------------------------------------------------------------------------------


def _enrolment(w: World) -> tuple[flow.Interaction, dict[str, Any]]:
    interaction = _password(w, w.park())
    step = run(flow.resume(w.core, interaction, None))
    assert isinstance(step, flow.ShowEnrolment), step
    options = run(passkey_steps.passkey_offer(w.core, step))
    assert options is not None
    return w.reload(interaction), options


def test_enrolment_creates_a_discoverable_passkey_and_signs_in(world: World) -> None:
    """W3C WebAuthn §5.4: a resident key with user verification, the user handle the customer's id;
    the first factor brings recovery codes; the customer is signed in with the password and the
    new passkey."""
    interaction, options = _enrolment(world)
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert websafe_decode(options["user"]["id"]) == world.user.id.encode()
    auth = SoftAuthenticator()
    done = run(passkey_steps.enrol_passkey(world.core, interaction, None, json.dumps(auth.create(options)), IP, "dev"))
    assert isinstance(done, flow.EnrolmentDone), done
    assert done.recovery_codes and len(done.recovery_codes) >= 8
    assert done.signed_in.session.amr == ["pwd", "hwk", "user", "mfa"]
    factors = run(world.store.list_factors(world.user.id))
    assert [f.kind for f in factors] == [FactorKind.PASSKEY] and factors[0].credential_id == auth.credential_id
    assert world.events("factor_enrolled")[-1]["detail"] == {"kind": "passkey", "factor": factors[0].id}


def test_a_synced_passkey_counts_as_software_key(world: World) -> None:
    """W3C WebAuthn §6.1 BE flag: a backup-eligible passkey may be synced: amr swk (RFC 8176)."""
    interaction, options = _enrolment(world)
    answer = SoftAuthenticator().create(options, flags=UP_UV | Flag.BE)
    done = run(passkey_steps.enrol_passkey(world.core, interaction, None, json.dumps(answer), IP, "dev"))
    assert isinstance(done, flow.EnrolmentDone)
    assert done.signed_in.session.amr == ["pwd", "swk", "user", "mfa"]


def test_enrolment_without_user_verification_is_refused(world: World) -> None:
    """W3C WebAuthn §7.1 step 15: user verification required."""
    interaction, options = _enrolment(world)
    answer = SoftAuthenticator().create(options, flags=Flag.UP)
    refused = run(passkey_steps.enrol_passkey(world.core, interaction, None, json.dumps(answer), IP, "dev"))
    assert isinstance(refused, flow.ShowEnrolment) and refused.status == 400 and refused.error
    assert not run(world.store.list_factors(world.user.id))


def test_a_password_alone_never_adds_a_passkey_next_to_a_factor(world: World) -> None:
    """Enrolment at sign-in is for a customer with no factor: with one, the factor step comes."""
    interaction, options = _enrolment(world)
    world.enrol(SoftAuthenticator())  # enrolled meanwhile (another tab)
    result = run(
        passkey_steps.enrol_passkey(
            world.core, interaction, None, json.dumps(SoftAuthenticator().create(options)), IP, "dev"
        )
    )
    assert isinstance(result, flow.ShowSecondFactor)
    assert len(run(world.store.list_factors(world.user.id))) == 1


def test_a_credential_registered_already_is_refused(world: World) -> None:
    """W3C WebAuthn §7.1 step 26: a credential id registered to anyone is refused."""
    bob = User(id="u_bob", username="bob", password_hash="x", name="Bob", created_at=world.clock.now)
    run(world.store.save_user(bob))
    theirs = SoftAuthenticator()
    world.enrol(theirs, bob)
    interaction, options = _enrolment(world)
    copy = SoftAuthenticator(credential_id=theirs.credential_id)
    refused = run(
        passkey_steps.enrol_passkey(world.core, interaction, None, json.dumps(copy.create(options)), IP, "dev")
    )
    assert isinstance(refused, flow.ShowEnrolment) and refused.status == 409
    assert not run(world.store.list_factors(world.user.id))


def test_a_passkey_keeps_the_name_the_customer_gave_it(world: World) -> None:
    """Credential names: the customer's, made printable and short; "Passkey" when none is given."""
    interaction, options = _enrolment(world)
    answer = json.dumps(SoftAuthenticator().create(options))
    done = run(passkey_steps.enrol_passkey(world.core, interaction, None, answer, IP, "dev", " Work\x07 laptop "))
    assert isinstance(done, flow.EnrolmentDone), done
    assert [f.name for f in run(world.store.list_factors(world.user.id))] == ["Work laptop"]
