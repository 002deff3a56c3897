"""Configuration: a TOML file, then FINGRADE_* environment variables, validated at start.

Every setting has a safe default so `fingrade serve` works with no configuration at all.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fingrade.finance.authentication import ACR_SCA
from fingrade.finance.currencies import BOOKED_CURRENCIES, MINOR_UNITS


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message says which and why."""


@dataclass
class Settings:
    # server
    issuer: str = ""  # default: https://localhost:8443, or http://127.0.0.1:<port> in plain-HTTP mode
    host: str = "127.0.0.1"
    port: int = 8443
    tls: str = "auto"  # auto: self-signed dev certificate | files: tls_cert/tls_key | off: plain HTTP behind a proxy
    tls_cert: str = ""
    tls_key: str = ""
    trusted_proxies: list[str] = field(default_factory=list)  # addresses whose X-Forwarded-For we believe
    data_dir: str = "fingrade-data"
    # mutual TLS (RFC 8705)
    mtls_port: int = 0  # a second TLS listener that asks for client certificates (0: none)
    mtls_base_url: str = ""  # base URL of the mTLS endpoints (default: the issuer's host on mtls_port)
    mtls_ca_file: str = ""  # PEM bundle of the CAs that issue tls_client_auth client certificates
    mtls_cert_header: str = "x-client-cert"  # header a trusted proxy forwards the client certificate in
    access_log: bool = False
    # what one client may cost (both listeners; docs/architecture.md "Connection limits")
    http_max_header_bytes: int = 16 * 1024  # request line + header fields of one request; beyond: 431
    http_max_header_line_bytes: int = 8 * 1024  # one header field (431) or the request line (414)
    http_header_timeout: float = 10.0  # seconds for a TLS handshake, and for a request head once it begins
    http_body_timeout: float = 30.0  # seconds for a request body to arrive whole after its head; beyond: 408
    http_keep_alive_timeout: float = 5.0  # seconds an idle kept-alive connection stays open
    http_max_connections: int = 1000  # open connections of the process (both listeners); beyond: 503 and close
    http_max_body_bytes: int = 64 * 1024  # request body of any route (some have a lower limit); beyond: 413
    # stores
    database_url: str = ""  # default: SQLite file in data_dir
    database_pool_size: int = 20  # PostgreSQL connections per process, kept open (no overflow: no connect churn)
    # sql | redis | memory. memory: in this process only, never the default (docs/performance.md):
    # a restart forgets codes, pushed requests, interactions, replay caches and sign-in throttles.
    onetime_backend: str = "sql"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "fingrade:"  # lets several deployments (or test runs) share one Redis
    # secrets (base64url, 32 bytes); generated into data_dir on first start when not given
    secret_key: str = ""
    key_encryption_key: str = ""
    # tokens
    signing_alg: str = "ES256"
    access_token_ttl: int = 300
    id_token_ttl: int = 300
    refresh_token_ttl: int = 30 * 86400
    code_ttl: int = 60
    interaction_ttl: int = 600
    par_ttl: int = 60  # lifetime of a pushed authorization request's request_uri (RFC 9126 §2.2)
    consent_resource_ttl: int = 3600  # a lodged consent not authorised within this is Rejected
    require_pushed_authorization_requests: bool = False  # RFC 9126 §5: authorization requests only via PAR
    # RFC 9449 §8/§9: DPoP proofs must carry a nonce this server issued (DPoP-Nonce header); a
    # nonce is valid for one to two lifetimes and is derived from secret_key, so every node knows it.
    dpop_nonce: bool = False
    dpop_nonce_lifetime: int = 300
    session_ttl: int = 8 * 3600
    # A token request whose answer was lost may be retried this long after a code was redeemed or a
    # refresh token rotated, with the same proof of possession, for the same answer (oauth/token_retry.py).
    token_retry_grace_seconds: int = 10
    access_token_audience: str = ""  # default: the issuer
    scopes: list[str] = field(
        default_factory=lambda: ["openid", "profile", "email", "offline_access", "accounts", "payments"]
    )
    # RFC 9396 payment_initiation: the currencies a customer may approve a payment in. Default: those
    # the bank books (finance/currencies.py), so an approved payment is never refused for its currency.
    payment_currencies: list[str] = field(default_factory=lambda: sorted(BOOKED_CURRENCIES))
    # registration
    registration_open: bool = False
    # login throttling (oauth/login_throttle.py): failures counted before each further attempt waits
    login_max_failures_per_account_address: int = 5  # one account from one address, or on one known browser
    login_max_failures_per_account: int = 10  # one account from browsers it never signed in on, anywhere
    login_max_failures_per_address: int = 20  # one address, whatever the account
    login_backoff_seconds: int = 30  # the first wait; doubles with each further failure, up to the window
    login_failure_window: int = 900  # failures are forgotten this long after the last one
    # strong customer authentication (docs/sca.md): required = every sign-in takes two factors and a
    # customer without a second factor enrols one first | optional = customers who enrolled one, and
    # requests that ask for SCA (fapi2 clients, payments, acr_values), take two | off = password only
    sca: str = "required"
    sca_reauth_days: int = 90  # long-lived account access needs a fresh SCA this often (PSD2 RTS Art. 10)
    max_factors: int = 10  # second factors one customer may enrol
    # password hashing (argon2id; RFC 9106 §4 second recommended option by default)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    # housekeeping
    janitor_interval: int = 60
    key_reload_seconds: float = 10.0
    client_cache_seconds: float = 5.0  # how long another node may use a client's old registration
    # the bank's resource server (fingrade.bank; docs/banking-api.md "Resource server")
    role: str = "all"  # all: authorization server + bank API | as: authorization server only | bank: bank API only
    bank_url: str = ""  # public base URL of the bank API (DPoP htu); default: issuer + /bank/v1
    bank_issuer: str = ""  # the authorization server the bank trusts; default (role all): issuer
    bank_audience: str = ""  # the aud the bank requires; default: access_token_audience, else bank_issuer
    bank_client_id: str = ""  # the bank's resource_server client, for introspection (role all: derived)
    bank_client_secret: str = ""
    bank_ca_file: str = ""  # CA bundle for the AS's TLS certificate; default: system CAs
    bank_introspection_cache_seconds: float = 2.0  # positive introspection results kept; 0: always ask
    bank_jwks_refresh_seconds: float = 10.0  # at most one JWKS refresh per this many seconds (unknown kid)
    # FAPI 2.0 SP 5.3.4: the bank accepts only sender-constrained (DPoP or certificate-bound) tokens.
    # true is for a deployment that is not FAPI and accepts unbound Bearer tokens too.
    bank_accept_bearer_tokens: bool = False
    # The acr a token must carry for the bank to execute a payment, with its dynamic linking
    # (docs/sca.md): default urn:fingrade:acr:sca, or none when role all runs with sca = off; "none": no check.
    bank_payment_acr: str = ""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def mtls_enabled(self) -> bool:
        """Client certificates can reach the server: its own mTLS listener or a proxy's mTLS host."""
        return bool(self.mtls_base_url)

    @property
    def audience(self) -> str:
        return self.access_token_audience or self.issuer


_ENV_PREFIX = "FINGRADE_"


def _coerce(name: str, raw: Any, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is list:
            if isinstance(raw, list):
                return [str(x) for x in raw]
            return [x.strip() for x in str(raw).split(",") if x.strip()]
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {kind.__name__}, got {raw!r}") from None


def load_settings(
    config_file: str | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    env = os.environ if environ is None else environ
    settings = Settings()
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or env.get("FINGRADE_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path}: {exc}") from None
        for section, content in data.items():  # sections are only for readability: [server], [tokens] ...
            items = content.items() if isinstance(content, dict) else [(section, content)]
            for name, value in items:
                if name not in known:
                    raise ConfigError(f"{path}: unknown setting {name!r}")
                values[name] = value
    for name in known:
        if _ENV_PREFIX + name.upper() in env:
            values[name] = env[_ENV_PREFIX + name.upper()]
    unknown = [k for k in (overrides or {}) if k not in known]
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for name, value in values.items():
        setattr(settings, name, _coerce(name, value, getattr(settings, name)))
    _finish(settings)
    return settings


def _is_loopback_host(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _finish_mtls(s: Settings) -> None:
    if s.mtls_port:
        if not 0 < s.mtls_port < 65536 or s.mtls_port == s.port:
            raise ConfigError("mtls_port: must be 1-65535 and differ from port")
        if s.tls == "off":
            raise ConfigError(
                "mtls_port needs TLS (tls = auto or files); behind a proxy, let the proxy ask for "
                "client certificates and set mtls_base_url"
            )
        if not s.mtls_base_url:
            host = urlsplit(s.issuer).hostname or "localhost"
            s.mtls_base_url = f"https://{'[' + host + ']' if ':' in host else host}:{s.mtls_port}"
    if s.mtls_base_url:
        parts = urlsplit(s.mtls_base_url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError("mtls_base_url: must be an https URL without query or fragment")
        s.mtls_base_url = s.mtls_base_url.rstrip("/")
    if s.mtls_ca_file and not Path(s.mtls_ca_file).is_file():
        raise ConfigError(f"mtls_ca_file {s.mtls_ca_file}: no such file")
    if not re.fullmatch(r"[a-z0-9-]{1,64}", s.mtls_cert_header.lower()) or s.mtls_cert_header.lower() in (
        "authorization",
        "dpop",
        "host",
        "content-type",
        "content-length",
        "cookie",
        "x-forwarded-for",
    ):
        raise ConfigError("mtls_cert_header: must be a header name of its own (letters, digits, -)")
    s.mtls_cert_header = s.mtls_cert_header.lower()


def _finish(s: Settings) -> None:
    if s.tls not in ("auto", "files", "off"):
        raise ConfigError("tls: must be auto, files or off")
    if s.tls == "files" and not (s.tls_cert and s.tls_key):
        raise ConfigError("tls = files needs tls_cert and tls_key")
    if not 0 < s.port < 65536:
        raise ConfigError("port: must be 1-65535")
    if not s.issuer:
        s.issuer = (
            "https://localhost:8443"
            if s.tls != "off" and s.port == 8443
            else (
                f"{'https' if s.tls != 'off' else 'http'}://{'localhost' if s.tls != 'off' else '127.0.0.1'}:{s.port}"
            )
        )
    parts = urlsplit(s.issuer)
    # RFC 8414 §2: the issuer is an https URL with no query or fragment.
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"issuer {s.issuer!r}: must be an https URL without query or fragment")
    if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
        raise ConfigError("issuer: http is only allowed on a loopback address (for local development)")
    s.issuer = s.issuer.rstrip("/")
    if s.tls == "off" and parts.scheme == "https" and not s.trusted_proxies:
        # Plain HTTP with an https issuer means a TLS-terminating proxy in front: name it, so that
        # nobody can bypass it (and its client-certificate checks) by connecting directly.
        raise ConfigError("tls = off behind a proxy needs trusted_proxies (the proxy's addresses)")
    for proxy in s.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"trusted_proxies: {proxy!r} is not an IP address or network") from None
    _finish_mtls(s)
    _finish_http_limits(s)
    if s.onetime_backend not in ("sql", "redis", "memory"):
        raise ConfigError("onetime_backend: must be sql, redis or memory")
    if s.signing_alg not in ("ES256", "PS256", "EdDSA"):
        raise ConfigError("signing_alg: must be ES256, PS256 or EdDSA")
    # FAPI 2.0 SP 5.3.2.1-11 / RFC 6749 §4.1.2: codes live at most 60 s.
    if not 1 <= s.code_ttl <= 60:
        raise ConfigError("code_ttl: must be 1-60 seconds")
    if not 30 <= s.access_token_ttl <= 3600:
        raise ConfigError("access_token_ttl: must be 30-3600 seconds")
    if not 30 <= s.id_token_ttl <= 3600:
        raise ConfigError("id_token_ttl: must be 30-3600 seconds")
    if not 60 <= s.refresh_token_ttl <= 400 * 86400:
        raise ConfigError("refresh_token_ttl: must be 60 s - 400 days")
    if not 60 <= s.interaction_ttl <= 3600:
        raise ConfigError("interaction_ttl: must be 60-3600 seconds")
    if not 60 <= s.consent_resource_ttl <= 86400:
        raise ConfigError("consent_resource_ttl: must be 60-86400 seconds")
    if not 10 <= s.par_ttl <= 599:
        # FAPI 2.0 SP 5.3.2.2-12: expires_in < 600; below 10 s a user could not follow the link.
        raise ConfigError("par_ttl: must be 10-599 seconds")
    if not 0 <= s.token_retry_grace_seconds <= 60:
        raise ConfigError(
            "token_retry_grace_seconds: must be 0-60 seconds (0: a used code or refresh token is never answered again)"
        )
    if not 30 <= s.dpop_nonce_lifetime <= 3600:
        raise ConfigError("dpop_nonce_lifetime: must be 30-3600 seconds")
    if "openid" not in s.scopes:
        raise ConfigError("scopes: must include openid")
    for scope in s.scopes:
        if not scope or any(ch in scope for ch in ' "\\') or not scope.isprintable():
            raise ConfigError(f"scopes: {scope!r} is not a valid scope token (RFC 6749 §3.3)")
    _finish_payment_currencies(s)
    _finish_login(s)
    if s.sca not in ("required", "optional", "off"):
        raise ConfigError("sca: must be required, optional or off")
    if not 1 <= s.sca_reauth_days <= 180:
        raise ConfigError("sca_reauth_days: must be 1-180 days")
    if not 1 <= s.max_factors <= 50:
        raise ConfigError("max_factors: must be 1-50")
    if s.argon2_memory_kib < 8192 or s.argon2_time_cost < 1:
        raise ConfigError("argon2: memory at least 8192 KiB and time cost at least 1")
    _finish_bank(s)
    if not s.database_url:
        s.database_url = f"sqlite:///{(s.data_path / 'fingrade.db').resolve()}"
    if not re.match(r"(sqlite|postgresql)(\+\w+)?://", s.database_url):
        raise ConfigError("database_url: must be a sqlite:///path or postgresql://user@host/db URL")
    if not 1 <= s.database_pool_size <= 500:
        raise ConfigError("database_pool_size: must be 1-500")


def _finish_login(s: Settings) -> None:
    for name in (
        "login_max_failures_per_account_address",
        "login_max_failures_per_account",
        "login_max_failures_per_address",
    ):
        if not 1 <= getattr(s, name) <= 1_000_000:
            raise ConfigError(f"{name}: must be 1-1000000")
    if not 60 <= s.login_failure_window <= 86400:
        raise ConfigError("login_failure_window: must be 60-86400 seconds")
    if not 1 <= s.login_backoff_seconds <= s.login_failure_window:
        raise ConfigError("login_backoff_seconds: must be at least 1 and at most login_failure_window")


def _finish_http_limits(s: Settings) -> None:
    if not 1024 <= s.http_max_header_bytes <= 1024 * 1024:
        raise ConfigError("http_max_header_bytes: must be 1024-1048576")
    if not 256 <= s.http_max_header_line_bytes <= s.http_max_header_bytes:
        raise ConfigError("http_max_header_line_bytes: must be 256 to http_max_header_bytes")
    if not 0.5 <= s.http_header_timeout <= 300:
        raise ConfigError("http_header_timeout: must be 0.5-300 seconds")
    if not 0.5 <= s.http_body_timeout <= 3600:
        raise ConfigError("http_body_timeout: must be 0.5-3600 seconds")
    if not 0.5 <= s.http_keep_alive_timeout <= 300:
        raise ConfigError("http_keep_alive_timeout: must be 0.5-300 seconds")
    if not 1 <= s.http_max_connections <= 1_000_000:
        raise ConfigError("http_max_connections: must be 1-1000000")
    if not 1024 <= s.http_max_body_bytes <= 64 * 1024 * 1024:
        raise ConfigError("http_max_body_bytes: must be 1024-67108864")


def _finish_payment_currencies(s: Settings) -> None:
    if not s.payment_currencies:
        raise ConfigError(
            "payment_currencies: must name at least one currency (a client that must not make "
            "payments is registered without payment_initiation)"
        )
    for code in s.payment_currencies:
        if code not in MINOR_UNITS:
            raise ConfigError(f"payment_currencies: {code!r} is not an ISO 4217 currency code (e.g. EUR)")
    s.payment_currencies = sorted(set(s.payment_currencies))


def _finish_bank(s: Settings) -> None:
    if s.role not in ("all", "as", "bank"):
        raise ConfigError("role: must be all, as or bank")
    if not s.bank_payment_acr:
        s.bank_payment_acr = "none" if s.role == "all" and s.sca == "off" else ACR_SCA
    if s.bank_payment_acr != "none" and not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}", s.bank_payment_acr):
        raise ConfigError("bank_payment_acr: must be an acr value (no spaces or quotes) or none")
    if not s.bank_url:
        s.bank_url = s.issuer + "/bank/v1"
    parts = urlsplit(s.bank_url)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or (parts.scheme == "http" and not _is_loopback_host(parts.hostname))
    ):
        raise ConfigError("bank_url: must be an https URL without query or fragment")
    s.bank_url = s.bank_url.rstrip("/")
    if not s.bank_issuer:
        if s.role == "bank":
            raise ConfigError("role bank needs bank_issuer: the issuer URL of the authorization server")
        s.bank_issuer = s.issuer
    parts = urlsplit(s.bank_issuer)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or (parts.scheme == "http" and not _is_loopback_host(parts.hostname))
    ):
        raise ConfigError("bank_issuer: must be an https URL without query or fragment")
    s.bank_issuer = s.bank_issuer.rstrip("/")
    if not s.bank_audience:
        s.bank_audience = s.access_token_audience or s.bank_issuer
    if s.role == "bank" and not (s.bank_client_id and s.bank_client_secret):
        raise ConfigError(
            "role bank needs bank_client_id and bank_client_secret (a resource_server client "
            "of the authorization server, for introspection)"
        )
    if bool(s.bank_client_id) != bool(s.bank_client_secret):
        raise ConfigError("bank_client_id and bank_client_secret go together")
    if not 0 <= s.bank_introspection_cache_seconds <= 60:
        raise ConfigError("bank_introspection_cache_seconds: must be 0-60 (it is the revocation latency)")
    if not 0.5 <= s.bank_jwks_refresh_seconds <= 3600:
        raise ConfigError("bank_jwks_refresh_seconds: must be 0.5-3600")
    if s.bank_ca_file and not Path(s.bank_ca_file).is_file():
        raise ConfigError(f"bank_ca_file: {s.bank_ca_file} is not a file")
