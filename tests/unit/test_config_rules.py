"""Configuration validation: a wrong setting stops the server at start with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fingrade.config import ConfigError, load_settings


def load(**overrides: Any):
    return load_settings(overrides=overrides, environ={})


def test_defaults_are_valid() -> None:
    s = load()
    assert s.issuer == "https://localhost:8443"
    assert s.code_ttl == 60 and s.tls == "auto" and s.onetime_backend == "sql"
    assert s.database_url.startswith("sqlite:///")


@pytest.mark.parametrize("ttl", [0, 61, 600, -1])
def test_code_ttl_at_most_60_s_fapi2_sp_5_3_2_1_11(ttl: int) -> None:
    with pytest.raises(ConfigError, match="code_ttl"):
        load(code_ttl=ttl)


@pytest.mark.parametrize("ttl", [1, 60])
def test_code_ttl_bounds_accepted_fapi2_sp_5_3_2_1_11(ttl: int) -> None:
    assert load(code_ttl=ttl).code_ttl == ttl


@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ],
)
def test_http_issuer_allowed_on_loopback_only_rfc8414_2(issuer: str) -> None:
    assert load(issuer=issuer, tls="off").issuer == issuer


@pytest.mark.parametrize(
    "issuer",
    [
        "http://as.example.com",
        "http://10.0.0.1:8080",
        "http://localhost.evil.com",
        "http://127.0.0.1.nip.io",
    ],
)
def test_http_issuer_refused_off_loopback_rfc8414_2(issuer: str) -> None:
    with pytest.raises(ConfigError, match="issuer"):
        load(issuer=issuer)


@pytest.mark.parametrize(
    "issuer",
    [
        "https://as.example.com?x=1",
        "https://as.example.com#f",
        "ftp://as.example.com",
        "as.example.com",
        "https://",
        "javascript:alert(1)",
    ],
)
def test_issuer_must_be_an_https_url_without_query_or_fragment_rfc8414_2(issuer: str) -> None:
    with pytest.raises(ConfigError, match="issuer"):
        load(issuer=issuer)


def test_issuer_trailing_slash_removed_rfc8414_3() -> None:
    # The issuer is compared by simple string comparison; one spelling everywhere.
    assert load(issuer="https://as.example.com/").issuer == "https://as.example.com"


def test_unknown_setting_in_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "fingrade.toml"
    path.write_text("[tokens]\ncode_ttl = 30\ncode_tll = 30\n")
    with pytest.raises(ConfigError, match="code_tll"):
        load_settings(str(path), environ={})


def test_unknown_override_refused() -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        load(nonsense=1)


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "fingrade.toml"
    path.write_text("[tokens]\ncode_ttl = 30\naccess_token_ttl = 600\n[server]\nport = 9000\n")
    s = load_settings(
        str(path), overrides={"port": 9100}, environ={"FINGRADE_ACCESS_TOKEN_TTL": "120", "FINGRADE_PORT": "9050"}
    )
    assert (s.code_ttl, s.access_token_ttl, s.port) == (30, 120, 9100)


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "fingrade.toml"
    path.write_text("code_ttl = 45\n")
    assert load_settings(environ={"FINGRADE_CONFIG": str(path)}).code_ttl == 45


def test_missing_and_broken_files_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "nope.toml"), environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("code_ttl = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_settings(str(bad), environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("port", "eighty"),
        ("port", 0),
        ("port", 70000),
        ("code_ttl", True),
        ("access_log", "maybe"),
        ("code_ttl", "1.5"),
    ],
)
def test_wrong_types_and_ranges_refused(name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tls", "sometimes"),
        ("onetime_backend", "memcached"),
        ("signing_alg", "RS256"),
        ("signing_alg", "HS256"),
        ("signing_alg", "none"),  # FAPI 2.0 SP 5.4.1-1
        ("access_token_ttl", 10),
        ("access_token_ttl", 86400),
        ("id_token_ttl", 5),
        ("refresh_token_ttl", 10),
        ("interaction_ttl", 10),
        ("trusted_proxies", "not-an-address"),
        ("scopes", "profile,email"),  # openid is required
        ("scopes", 'openid,bad"scope'),  # RFC 6749 §3.3 scope-token charset
        ("scopes", "openid,back\\slash"),
        ("argon2_memory_kib", 1024),
        ("argon2_time_cost", 0),
        ("payment_currencies", "EUR,XYZ"),
        ("payment_currencies", "eur"),
        ("payment_currencies", ""),
    ],
)
def test_invalid_values_refused(name: str, value: Any) -> None:
    with pytest.raises(ConfigError):
        load(**{name: value})


def test_tls_files_need_cert_and_key() -> None:
    with pytest.raises(ConfigError, match="tls_cert"):
        load(tls="files")


def test_plain_http_mode_defaults_to_a_loopback_http_issuer() -> None:
    s = load(tls="off", port=8080)
    assert s.issuer == "http://127.0.0.1:8080"


def test_environment_values_are_coerced_and_checked() -> None:
    s = load_settings(
        environ={
            "FINGRADE_REGISTRATION_OPEN": "yes",
            "FINGRADE_SCOPES": "openid, accounts",
            "FINGRADE_TRUSTED_PROXIES": "10.0.0.0/8,::1",
        }
    )
    assert s.registration_open is True and s.scopes == ["openid", "accounts"]
    assert s.trusted_proxies == ["10.0.0.0/8", "::1"]
    with pytest.raises(ConfigError, match="code_ttl"):
        load_settings(environ={"FINGRADE_CODE_TTL": "3600"})


@pytest.mark.parametrize("size", [0, -1, 501])
def test_database_pool_size_bounds(size: int) -> None:
    with pytest.raises(ConfigError, match="database_pool_size"):
        load(database_pool_size=size)


@pytest.mark.parametrize("ttl", [59, 86401, 0])
def test_consent_resource_ttl_bounds(ttl: int) -> None:
    with pytest.raises(ConfigError, match="consent_resource_ttl"):
        load(consent_resource_ttl=ttl)


def test_payment_currencies_default_to_the_banks_booked_currencies() -> None:
    """One source of truth: by default a payment may be approved in exactly the currencies the bank
    books (finance/currencies.py), so the bank never refuses an approved payment for its currency."""
    from fingrade.finance.currencies import BOOKED_CURRENCIES

    assert load().payment_currencies == sorted(BOOKED_CURRENCIES)


def test_payment_currencies_from_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text('[payments]\npayment_currencies = ["EUR", "AUD", "EUR"]\n')
    assert load_settings(str(cfg), environ={}).payment_currencies == ["AUD", "EUR"]
    assert load_settings(environ={"FINGRADE_PAYMENT_CURRENCIES": "GBP, JPY"}).payment_currencies == ["GBP", "JPY"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("EUR,XYZ", "'XYZ' is not an ISO 4217 currency code"),
        ("eur", "'eur' is not an ISO 4217"),
        ("EURO", "'EURO' is not an ISO 4217"),
        ("", "must name at least one currency"),
    ],
)
def test_payment_currencies_must_be_iso_4217_codes(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"payment_currencies: {message}"):
        load_settings(environ={"FINGRADE_PAYMENT_CURRENCIES": value})


@pytest.mark.parametrize(
    "overrides",
    [
        {"login_max_failures_per_account": 0},
        {"login_max_failures_per_address": -1},
        {"login_max_failures_per_account_address": 0},
        {"login_failure_window": 10},
        {"login_backoff_seconds": 0},
        {"login_backoff_seconds": 1000, "login_failure_window": 900},
    ],
)
def test_login_throttling_settings_are_bounded(overrides: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="login_"):
        load(**overrides)


def test_connection_limit_defaults() -> None:
    s = load()
    assert (s.http_max_header_bytes, s.http_max_header_line_bytes) == (16384, 8192)
    assert (s.http_header_timeout, s.http_body_timeout, s.http_keep_alive_timeout) == (10.0, 30.0, 5.0)
    assert (s.http_max_connections, s.http_max_body_bytes) == (1000, 65536)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("http_max_header_bytes", 100),
        ("http_max_header_line_bytes", 32768),
        ("http_max_header_line_bytes", 10),
        ("http_header_timeout", 0),
        ("http_header_timeout", 1000),
        ("http_body_timeout", 0),
        ("http_keep_alive_timeout", 0),
        ("http_max_connections", 0),
        ("http_max_body_bytes", 10),
    ],
)
def test_connection_limits_must_be_sane(name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


def test_connection_limits_from_the_environment() -> None:
    s = load_settings(environ={"FINGRADE_HTTP_HEADER_TIMEOUT": "2.5", "FINGRADE_HTTP_MAX_CONNECTIONS": "50"})
    assert s.http_header_timeout == 2.5 and s.http_max_connections == 50
