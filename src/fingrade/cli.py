"""The `fingrade` command: serve, migrate, and administration of clients, users, keys and
registration tokens. Administration talks to the same stores the server uses."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from fingrade.config import ConfigError, Settings, load_settings
from fingrade.oauth import consent_lifecycle as consents
from fingrade.oauth import consent_resources, factors, login_throttle, user_status
from fingrade.oauth.authorization_details import SUPPORTED_TYPES
from fingrade.oauth.context import Core
from fingrade.oauth.models import User
from fingrade.oauth.passwords import check_password_policy
from fingrade.oauth.profiles import IDENTITY_VERIFIED, PROFILES
from fingrade.oauth.registration import build_client, client_metadata
from fingrade.protocol import strict_json
from fingrade.protocol.crypto import new_token, token_hash
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.sealing import SealedDataError
from fingrade.runtime import build_core, close_core

TLS_SUBJECT_FLAGS = {
    "--tls-subject-dn": "tls_client_auth_subject_dn",
    "--tls-san-dns": "tls_client_auth_san_dns",
    "--tls-san-uri": "tls_client_auth_san_uri",
    "--tls-san-ip": "tls_client_auth_san_ip",
    "--tls-san-email": "tls_client_auth_san_email",
}


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(args.config, overrides)


def _run(args: argparse.Namespace, fn: Callable[[Core], Awaitable[int]]) -> int:
    async def main() -> int:
        core = await build_core(_settings(args))
        try:
            return await fn(core)
        finally:
            await close_core(core)

    return asyncio.run(main())


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


# -- serve ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from fingrade.devtls import ensure_dev_certificate
    from fingrade.web.app import create_server_app
    from fingrade.web.server import serve

    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "issuer": args.issuer, "role": args.role}
    if args.http:
        overrides["tls"] = "off"
    settings = _settings(args, **overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def prepare() -> None:
        if settings.role == "bank":  # no authorization server here: no keys, no demo users
            from fingrade.bank.server import migrate_bank_database
            from fingrade.store.sql.db import Database

            db = Database(settings.database_url)
            try:
                await migrate_bank_database(db)
            finally:
                await db.close()
            return
        core = await build_core(settings)
        try:
            if settings.onetime_backend == "redis":  # the replay caches' durability (store/redis/onetime.py)
                await core.onetime.check_persistence()  # type: ignore[attr-defined]  # the Redis store's own
            if args.demo:
                from fingrade.bank.demo import seed_bank_demo
                from fingrade.demo import seed_demo

                await seed_demo(core)
                await seed_bank_demo(core)
        finally:
            await close_core(core)

    # Prepare (migrate, keys, demo) before listening, so a bad configuration fails fast.
    asyncio.run(prepare())
    ssl: dict[str, Any] = {}
    if settings.tls == "auto":
        cert, key = ensure_dev_certificate(settings.data_path, [settings.host])
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        print(f"development TLS certificate: {cert} (self-signed; trust it in your test client)")
    elif settings.tls == "files":
        ssl = {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
    if settings.role == "bank":
        from fingrade.bank.server import create_bank_server
        from fingrade.web.security_headers import SecurityHeaders

        app: Any = create_bank_server(settings)
        app.add_middleware(SecurityHeaders, hsts=settings.bank_url.startswith("https://"))
        print(
            f"Fingrade bank API listening on {settings.host}:{settings.port}, at {settings.bank_url}, "
            f"trusting {settings.bank_issuer}",
            flush=True,
        )
    else:
        app = create_server_app(settings)
        print(
            f"Fingrade listening on {settings.host}:{settings.port}, issuer {settings.issuer}"
            + (f", bank API at {settings.bank_url}" if settings.role == "all" else ""),
            flush=True,
        )
        if settings.mtls_port:
            print(f"mutual TLS listener on {settings.host}:{settings.mtls_port} ({settings.mtls_base_url})", flush=True)
    serve(settings, app, ssl)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    async def main() -> int:
        core = await build_core(_settings(args), migrate=True)
        await close_core(core)
        print("database is at the latest schema")
        return 0

    return asyncio.run(main())


# -- clients ----------------------------------------------------------------------------------


def cmd_clients(args: argparse.Namespace) -> int:
    async def add(core: Core) -> int:
        meta: dict[str, Any] = {
            "client_name": args.name,
            "security_profile": args.profile,
            "redirect_uris": args.redirect_uri or [],
        }
        if args.auth_method:
            meta["token_endpoint_auth_method"] = args.auth_method
        if args.grant_type:
            meta["grant_types"] = args.grant_type
        if args.scope:
            meta["scope"] = args.scope
        if args.no_pkce:
            meta["require_pkce"] = False
        if args.require_par:
            meta["require_pushed_authorization_requests"] = True
        if args.require_dpop:
            meta["dpop_bound_access_tokens"] = True
        if args.authorization_details_type:
            meta["authorization_details_types"] = args.authorization_details_type
        if args.jwks_file:
            try:
                meta["jwks"] = strict_json.loads(Path(args.jwks_file).read_bytes())
            except (OSError, strict_json.JsonError) as exc:
                print(f"error: --jwks-file: {exc}", file=sys.stderr)
                return 2
        for field in TLS_SUBJECT_FLAGS.values():
            if getattr(args, field) is not None:
                meta[field] = getattr(args, field)
        if args.tls_bound_tokens:
            meta["tls_client_certificate_bound_access_tokens"] = True
        client, secret = build_client(core, meta)
        if args.client_id:
            client.client_id = args.client_id
            if await core.store.get_client(args.client_id):
                print(f"client {args.client_id} already exists", file=sys.stderr)
                return 1
        client.resource_server = args.resource_server
        if args.verified:
            if not PROFILES[client.profile].identity_needs_proof:
                print("--verified is for native apps (other profiles prove their identity)", file=sys.stderr)
                return 2
            client.metadata[IDENTITY_VERIFIED] = True
        await core.store.save_client(client)
        await core.store.audit("client_registered", core.clock(), client_id=client.client_id, detail={"by": "cli"})
        out = client_metadata(core, client)
        if secret:
            out["client_secret"] = secret
        _print(out)
        return 0

    async def list_(core: Core) -> int:
        for c in await core.store.list_clients():
            print(f"{c.client_id}\t{c.profile}\t{c.token_endpoint_auth_method}\t{c.client_name}")
        return 0

    async def show(core: Core) -> int:
        client = await core.store.get_client(args.client_id)
        if client is None:
            print("no such client", file=sys.stderr)
            return 1
        _print(
            {
                **client_metadata(core, client),
                "resource_server": client.resource_server,
                "allowed_origins": client.allowed_origins,
            }
        )
        return 0

    async def verify(core: Core) -> int:
        # RFC 8252 §8.6: the operator vouches for (or stops vouching for) a native app's identity.
        client = await core.store.get_client(args.client_id)
        if client is None:
            print("no such client", file=sys.stderr)
            return 1
        if not PROFILES[client.profile].identity_needs_proof:
            print(f"only native apps are verified; this is a {client.profile} client", file=sys.stderr)
            return 2
        if args.action == "verify":
            client.metadata[IDENTITY_VERIFIED] = True
        else:
            client.metadata.pop(IDENTITY_VERIFIED, None)
        client.updated_at = core.clock()
        await core.store.save_client(client)
        await core.store.audit(
            "client_updated",
            core.clock(),
            client_id=client.client_id,
            detail={"by": "cli", IDENTITY_VERIFIED: args.action == "verify"},
        )
        _print(client_metadata(core, client))
        return 0

    async def remove(core: Core) -> int:
        ok = await core.store.delete_client(args.client_id)
        if ok:
            await core.store.audit("client_deleted", core.clock(), client_id=args.client_id, detail={"by": "cli"})
        print("removed; its grants are revoked" if ok else "no such client")
        return 0 if ok else 1

    try:
        return _run(
            args,
            {"add": add, "list": list_, "show": show, "remove": remove, "verify": verify, "unverify": verify}[
                args.action
            ],
        )
    except OAuthError as exc:
        print(f"error: {exc.error}: {exc.description}", file=sys.stderr)
        return 2


# -- users ------------------------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the passwords do not match")
    check_password_policy(password)
    return password


def _when(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def cmd_users(args: argparse.Namespace) -> int:
    async def add(core: Core) -> int:
        username = args.username.strip().lower()
        if not username or len(username) > 100 or not username.isprintable() or " " in username:
            print("usernames are 1-100 printable characters without spaces", file=sys.stderr)
            return 2
        if await core.store.get_user_by_username(username):
            print(f"user {username} already exists", file=sys.stderr)
            return 1
        password = _read_password(args)
        user = User(
            id="u_" + secrets.token_urlsafe(12),
            username=username,
            password_hash=core.passwords.hash(password),
            name=args.name or username,
            email=args.email or "",
            email_verified=False,
            created_at=int(time.time()),
        )
        await core.store.save_user(user)
        print(f"user {username} created (sub {user.id})")
        return 0

    async def list_(core: Core) -> int:
        for u in await core.store.list_users():
            print(f"{u.username}\t{u.id}\t{u.name}\t{'disabled' if u.disabled else 'active'}")
        return 0

    async def set_password(core: Core) -> int:
        user = await core.store.get_user_by_username(args.username.strip().lower())
        if user is None:
            print("no such user", file=sys.stderr)
            return 1
        user.password_hash = core.passwords.hash(_read_password(args))
        await core.store.save_user(user)
        await core.store.audit("password_changed", core.clock(), user_id=user.id, detail={"by": "cli"})
        print("password changed")
        return 0

    async def _user(core: Core) -> User | None:
        user = await core.store.get_user_by_username(args.username.strip().lower())
        if user is None:
            print("no such user", file=sys.stderr)
        return user

    async def disable(core: Core) -> int:
        user = await _user(core)
        change = await user_status.disable(core, user.id, by="cli") if user is not None else None
        if user is None or change is None:
            return 1
        print(
            f"user {user.username} {'disabled' if change.changed else 'was already disabled'}: "
            f"{change.sessions_ended} sessions ended, {len(change.grants_revoked)} grants revoked "
            f"(tokens refused at once; at a separate bank within its introspection cache time)"
        )
        return 0

    async def enable(core: Core) -> int:
        user = await _user(core)
        change = await user_status.enable(core, user.id, by="cli") if user is not None else None
        if user is None or change is None:
            return 1
        print(
            f"user {user.username} {'enabled' if change.changed else 'was not disabled'}; revoked grants stay revoked"
        )
        return 0

    async def unlock(core: Core) -> int:
        user = await _user(core)
        if user is None:
            return 1
        await login_throttle.unlock(core, user.username)
        await core.store.audit("user_unlocked", core.clock(), user_id=user.id, detail={"by": "cli"})
        print(f"sign-in throttling of {user.username} cleared")
        return 0

    async def mfa(core: Core) -> int:
        user = await _user(core)
        if user is None:
            return 1
        if args.mfa_action == "reset":
            removed = await factors.reset(core, user.id, by="cli")
            print(
                f"{removed} second factor(s) and the recovery codes of {user.username} removed; "
                "they set up a new one at their next sign-in"
            )
            return 0
        listed = await core.store.list_factors(user.id)
        for f in listed:
            used = _when(f.last_used_at) if f.last_used_at else "never used"
            print(f"{f.id}\t{f.kind.value}\t{f.name}\tadded {_when(f.created_at)}\t{used}")
        print(f"{await core.store.recovery_codes_left(user.id)} recovery codes left")
        return 0

    try:
        return _run(
            args,
            {
                "add": add,
                "list": list_,
                "set-password": set_password,
                "disable": disable,
                "enable": enable,
                "unlock": unlock,
                "mfa": mfa,
            }[args.action],
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# -- consents (the bank's view of what customers allowed) ----------------------------------


def cmd_consents(args: argparse.Namespace) -> int:
    async def list_(core: Core) -> int:
        user_id = None
        if args.user:
            user = await core.store.get_user_by_username(args.user.strip().lower())
            if user is None:
                print("no such user", file=sys.stderr)
                return 1
            user_id = user.id
        now = core.clock()
        shown = [
            (g, consents.grant_state(core, g, refresh_until, now))
            for g, refresh_until in await core.store.list_user_grants(user_id)
        ]
        shown = [(g, state) for g, state in shown if args.all or state == consents.GrantState.ACTIVE]
        # The UK ConsentId a grant authorised, as the app and the customer know it (else null).
        lodged = await core.store.consent_resource_ids([g.id for g, _ in shown])
        _print(
            [
                {
                    "grant_id": g.id,
                    "consent_id": lodged.get(g.id),
                    "user_id": g.user_id,
                    "client_id": g.client_id,
                    "scope": g.scope,
                    "created_at": g.created_at,
                    "revoked_at": g.revoked_at,
                    "state": state,
                    "authorization_details": g.authorization_details,
                }
                for g, state in shown
            ]
        )
        return 0

    async def revoke(core: Core) -> int:
        grant = await consents.revoke_grant(core, args.grant_id, by="bank")
        if grant is not None:
            print(f"grant {grant.id} of client {grant.client_id} revoked")
            return 0
        # A UK ConsentId (aac-…) as the app and the customer know it: revoked with its grant.
        lodged = await consent_resources.revoke_by_bank(core, args.grant_id)
        if lodged is not None:
            print(f"consent {lodged.id} of client {lodged.client_id} revoked")
            return 0
        print("no such grant or consent", file=sys.stderr)
        return 1

    return _run(args, {"list": list_, "revoke": revoke}[args.action])


# -- keys -------------------------------------------------------------------------------------


def cmd_keys(args: argparse.Namespace) -> int:
    async def list_(core: Core) -> int:
        for k in await core.store.list_signing_keys():
            print(f"{k.kid}\t{k.alg}\t{k.status}\tcreated {k.created_at}")
        return 0

    async def rotate(core: Core) -> int:
        new = await core.keys.rotate()
        await core.store.audit("keys_rotated", core.clock(), detail={"active": new.kid})
        print(f"rotated: {new.kid} is now active; running servers switch within {core.settings.key_reload_seconds:g} s")
        return 0

    return _run(args, {"list": list_, "rotate": rotate}[args.action])


# -- registration tokens ----------------------------------------------------------------------


def cmd_registration_token(args: argparse.Namespace) -> int:
    async def create(core: Core) -> int:
        token = new_token(32)
        now = core.clock()
        label = args.label or f"token-{now}"
        expires = now + args.expires_in if args.expires_in else None
        await core.store.create_registration_token(token_hash(token), label, expires, now)
        print(token)
        print(f"label {label}; expires {'never' if expires is None else expires}", file=sys.stderr)
        return 0

    async def revoke(core: Core) -> int:
        ok = await core.store.revoke_registration_token(args.label)
        print("revoked" if ok else "no such active token")
        return 0 if ok else 1

    async def list_(core: Core) -> int:
        for t in await core.store.list_registration_tokens():
            print(f"{t['label']}\tcreated {t['created_at']}\texpires {t['expires_at']}\trevoked {t['revoked_at']}")
        return 0

    return _run(args, {"create": create, "revoke": revoke, "list": list_}[args.action])


# The commands whose only argument is an identifier. Grant ids are base64url (protocol/crypto.new_token),
# so one in 64 begins with "-", which argparse would take for an unknown option; a client id chosen
# with --client-id, or a token label, may begin with one too.
_ID_COMMANDS = {
    ("consents", "revoke"),
    ("clients", "show"),
    ("clients", "remove"),
    ("clients", "verify"),
    ("clients", "unverify"),
    ("registration-token", "revoke"),
}
_ID_HELP = "may begin with '-' (only -h and --help ask for help)"


def _dash_ids(argv: list[str]) -> list[str]:
    """`fingrade consents revoke -Xy…` means `fingrade consents revoke -- -Xy…`: the id is the last
    argument of these commands (they have no options, and global options come before the command), so
    a last argument beginning with "-" is the id, except exactly -h/--help. An explicit `--` still works."""
    if (
        len(argv) >= 3
        and (argv[-3], argv[-2]) in _ID_COMMANDS
        and argv[-1].startswith("-")
        and argv[-1] not in ("--", "-h", "--help")
    ):
        return [*argv[:-1], "--", argv[-1]]
    return argv


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fingrade", description=__doc__)
    p.add_argument("--config", help="TOML configuration file (default: $FINGRADE_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the authorization server and/or the bank API")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--issuer")
    s.add_argument("--http", action="store_true", help="plain HTTP behind a TLS-terminating proxy")
    s.add_argument("--demo", action="store_true", help="seed demo users and clients")
    s.add_argument(
        "--role",
        choices=["all", "as", "bank"],
        help="all (default): authorization server and bank API; as: authorization server only; "
        "bank: the bank API only, trusting bank_issuer",
    )
    s.set_defaults(fn=cmd_serve)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(fn=cmd_migrate)

    c = sub.add_parser("clients", help="manage clients").add_subparsers(dest="action", required=True)
    a = c.add_parser("add")
    a.add_argument("--name", required=True)
    a.add_argument("--profile", required=True, choices=list(PROFILES))
    a.add_argument("--redirect-uri", action="append")
    a.add_argument("--auth-method", choices=sorted(set().union(*(p.auth_methods for p in PROFILES.values()))))
    a.add_argument(
        "--grant-type", action="append", choices=["authorization_code", "refresh_token", "client_credentials"]
    )
    a.add_argument("--scope")
    a.add_argument(
        "--jwks-file",
        help="public JWKS for private_key_jwt and signed request objects, or "
        "with x5c certificates for self_signed_tls_client_auth",
    )
    # RFC 8705 §2.1.2: a tls_client_auth client is identified by exactly one of these.
    for flag, field in TLS_SUBJECT_FLAGS.items():
        a.add_argument(flag, dest=field, metavar="VALUE", help=f"tls_client_auth: {field}")
    a.add_argument(
        "--tls-bound-tokens",
        action="store_true",
        help="tls_client_certificate_bound_access_tokens: bind access tokens to the client certificate",
    )
    a.add_argument(
        "--client-id",
        help="choose the client_id (default: generated, c_ + random); "
        "one beginning with '-' is written --client-id=-ID",
    )
    a.add_argument(
        "--no-pkce",
        action="store_true",
        help="confidential OIDC clients only: allow authorization requests without PKCE (nonce instead)",
    )
    a.add_argument(
        "--require-par", action="store_true", help="authorization requests only through the PAR endpoint (RFC 9126)"
    )
    a.add_argument(
        "--require-dpop",
        action="store_true",
        help="token requests only with a DPoP proof (RFC 9449 §5.2 dpop_bound_access_tokens)",
    )
    a.add_argument("--resource-server", action="store_true", help="may introspect other clients' tokens")
    a.add_argument(
        "--verified",
        action="store_true",
        help="native apps: their identity was checked, so a remembered consent is used again "
        "without asking (RFC 8252 §8.6)",
    )
    a.add_argument(
        "--authorization-details-type",
        action="append",
        choices=list(SUPPORTED_TYPES),
        help="an RFC 9396 authorization details type the client may request (repeatable)",
    )
    c.add_parser("list")
    for name in ("show", "remove"):
        c.add_parser(name).add_argument("client_id", help=_ID_HELP)
    for name, says in (
        ("verify", "the native app's identity is assured: repeated requests may go straight back"),
        ("unverify", "the native app's repeated requests ask the user again (the default)"),
    ):
        c.add_parser(name, help=says).add_argument("client_id", help=_ID_HELP)
    sub.choices["clients"].set_defaults(fn=cmd_clients)

    u = sub.add_parser("users", help="manage users").add_subparsers(dest="action", required=True)
    ua = u.add_parser("add")
    ua.add_argument("username")
    ua.add_argument("--name")
    ua.add_argument("--email")
    ua.add_argument("--password-stdin", action="store_true")
    u.add_parser("list")
    sp = u.add_parser("set-password")
    sp.add_argument("username")
    sp.add_argument("--password-stdin", action="store_true")
    u.add_parser(
        "disable", help="end the user's sessions, grants and tokens at once; no sign-in until enabled"
    ).add_argument("username")
    u.add_parser("enable", help="let a disabled user sign in again").add_argument("username")
    u.add_parser("unlock", help="clear the user's sign-in throttling (all addresses and browsers)").add_argument(
        "username"
    )
    mf = u.add_parser("mfa", help="the user's second factors (docs/sca.md)").add_subparsers(
        dest="mfa_action", required=True
    )
    mf.add_parser("list", help="the user's second factors and how many recovery codes are left").add_argument(
        "username"
    )
    mf.add_parser(
        "reset", help="remove every second factor and recovery code (audited); the user enrols anew at next sign-in"
    ).add_argument("username")
    sub.choices["users"].set_defaults(fn=cmd_users)

    cs = sub.add_parser("consents", help="customers' grants: list, revoke").add_subparsers(dest="action", required=True)
    cl = cs.add_parser("list", help="active grants (all states with --all) as JSON")
    cl.add_argument("--user", help="username")
    cl.add_argument("--all", action="store_true", help="include expired and revoked grants")
    cs.add_parser(
        "revoke", help="revoke one grant, or a UK consent by its ConsentId: its tokens die at once"
    ).add_argument("grant_id", help="as `consents list` prints it, or a ConsentId (aac-…); " + _ID_HELP)
    sub.choices["consents"].set_defaults(fn=cmd_consents)

    k = sub.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    k.add_parser("list")
    k.add_parser("rotate")
    sub.choices["keys"].set_defaults(fn=cmd_keys)

    r = sub.add_parser("registration-token", help="initial access tokens for dynamic registration")
    ra = r.add_subparsers(dest="action", required=True)
    rc = ra.add_parser("create")
    rc.add_argument("--label")
    rc.add_argument("--expires-in", type=int, help="seconds")
    ra.add_parser("revoke").add_argument("label", help=_ID_HELP)
    ra.add_parser("list")
    r.set_defaults(fn=cmd_registration_token)
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    return parser().parse_args(_dash_ids(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except SealedDataError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    except (OSError, SQLAlchemyError, RedisError) as exc:
        # Unreachable PostgreSQL/Redis or an unwritable data directory: say which, without a traceback.
        print(f"cannot start: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
