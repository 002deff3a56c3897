"""The authorization server's table definitions. Alembic migrations under migrations/ create exactly
these; the bank's tables are its own (fingrade/bank/schema.py, fingrade/bank/migrations)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("profile", String(32), nullable=False),
    Column("client_name", String(200), nullable=False),
    Column("redirect_uris", Text, nullable=False),  # JSON list
    Column("token_endpoint_auth_method", String(40), nullable=False),
    Column("grant_types", Text, nullable=False),  # JSON list
    Column("scope", Text, nullable=False),
    Column("secret_hash", String(128)),
    Column("jwks", Text),  # JSON
    Column("metadata", Text, nullable=False),  # JSON
    Column("resource_server", Boolean, nullable=False),
    Column("registration_token_hash", String(128)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

client_origins = Table(
    "client_origins",
    metadata,
    Column("origin", String(300), primary_key=True),
    Column("client_id", String(64), primary_key=True),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_verified", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("amr", String(100), nullable=False),
    Index("ix_sessions_expires_at", "expires_at"),
)

# Second factors of strong customer authentication (oauth/factors.py). A TOTP secret is sealed with
# the key-encryption key (the factor id as associated data); a passkey is kept as its authenticator
# gave it (public data).
authn_factors = Table(
    "authn_factors",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(100), nullable=False),
    Column("secret_sealed", LargeBinary),
    Column("credential_id", String(1400), unique=True),  # base64url of up to 1023 bytes
    Column("credential", LargeBinary),
    Column("sign_count", BigInteger, nullable=False),
    Column("backup_eligible", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger),
    Index("ix_authn_factors_user", "user_id"),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_recovery_codes_user", "user_id"),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("client_id", String(64), primary_key=True),
    Column("scope", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(64)),
    Column("scope", Text, nullable=False),
    Column("auth_time", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("authorization_details", Text),  # JSON list, RFC 9396 (migration 0003)
    Column("acr", String(64)),  # how the customer authenticated (migration 0008)
    Column("amr", String(100)),  # space-separated RFC 8176 values
    Column("linked_details_hash", String(64)),  # dynamic linking: the payment details authenticated
    Column("linked_factors", Text),  # JSON list of the factor ids that authenticated them
    Index("ix_grants_user_client", "user_id", "client_id"),
)

# Consents lodged by a resource server before the customer's authorization (UK Open Banking
# account-access-consents; oauth/consent_resources.py). The status moves only by conditional updates:
# AwaitingAuthorisation -> Authorised (with the grant, in one transaction) | Rejected | Revoked.
consent_resources = Table(
    "consent_resources",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("authorization_details", Text, nullable=False),  # JSON list, RFC 9396
    Column("data", Text, nullable=False),  # JSON object, the resource server's own fields
    Column("created_at", BigInteger, nullable=False),
    Column("status_updated_at", BigInteger, nullable=False),
    Column("user_id", String(64)),
    Column("grant_id", String(64)),
    Index("ix_consent_resources_grant", "grant_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("grant_id", String(64), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(64)),
    Column("scope", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger),
    Column("dpop_jkt", String(64)),  # RFC 9449 §5 (migration 0002)
    Column("binding", String(8)),  # dpop | mtls: how the grant's access tokens are bound (migration 0007)
    Index("ix_refresh_tokens_grant", "grant_id"),
    Index("ix_refresh_tokens_expires_at", "expires_at"),
)

revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("private_jwk_encrypted", LargeBinary, nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activated_at", BigInteger),
    Column("retired_at", BigInteger),
)

registration_tokens = Table(
    "registration_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("label", String(100), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("revoked_at", BigInteger),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("event", String(60), nullable=False),
    Column("client_id", String(64)),
    Column("user_id", String(64)),
    Column("ip", String(64)),
    Column("detail", Text),
    Index("ix_audit_events_at", "at"),
)

onetime = Table(
    "onetime",
    metadata,
    Column("kind", String(24), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Text),
    Column("used", Integer, nullable=False, default=0),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_onetime_expires_at", "expires_at"),
)
