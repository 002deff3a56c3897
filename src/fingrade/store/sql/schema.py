"""Table definitions. Alembic migrations under migrations/ create exactly these."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
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

# -- the demo bank's ledger (fingrade.bank; migration 0004) ----------------------------------------
# Owned by the resource-server part: the authorization server never reads these tables. Money is
# integer minor units (cents) everywhere. `owner_user_id` is the authorization server's users.id,
# i.e. the access token's `sub`; there is deliberately no foreign key to `users`, so the bank can
# also run on a database of its own. The CHECK on bank_accounts backs the conditional UPDATE in
# bank/ledger.py: even a bug there cannot leave a balance below its overdraft limit.

bank_accounts = Table(
    "bank_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner_user_id", String(64)),  # NULL for the bank's internal clearing accounts
    Column("kind", String(16), nullable=False),  # current | savings | clearing
    Column("iban", String(34), nullable=False, unique=True),
    Column("name", String(140), nullable=False),  # display name (OB "Nickname")
    Column("holder_name", String(140), nullable=False),  # OB "Account.Name"
    Column("currency", String(3), nullable=False),
    Column("overdraft_limit", BigInteger),  # minor units >= 0; NULL = unlimited (clearing accounts only)
    Column("balance", BigInteger, nullable=False),  # minor units; changed only by bank/ledger.py transfers
    Column("status", String(16), nullable=False),  # open | closed
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint(
        "overdraft_limit IS NULL OR (overdraft_limit >= 0 AND balance >= -overdraft_limit)",
        name="ck_bank_accounts_overdraft",
    ),
    Index("ix_bank_accounts_owner", "owner_user_id"),
)

bank_transfers = Table(
    "bank_transfers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # internal | outgoing | incoming
    Column("debtor_account_id", String(64), ForeignKey("bank_accounts.id"), nullable=False),
    Column("creditor_account_id", String(64), ForeignKey("bank_accounts.id"), nullable=False),
    Column("debtor_iban", String(34), nullable=False),
    Column("debtor_name", String(140), nullable=False),
    Column("creditor_iban", String(34), nullable=False),
    Column("creditor_name", String(140), nullable=False),
    Column("amount", BigInteger, nullable=False),  # minor units > 0
    Column("currency", String(3), nullable=False),
    Column("remittance", String(140), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # booked
    CheckConstraint("amount > 0", name="ck_bank_transfers_amount"),
)

bank_entries = Table(
    "bank_entries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("transfer_id", String(64), ForeignKey("bank_transfers.id"), nullable=False),
    Column("account_id", String(64), ForeignKey("bank_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # signed minor units: debit < 0 < credit
    Column("currency", String(3), nullable=False),
    Column("booked_at", BigInteger, nullable=False),  # epoch seconds
    Column("value_date", Date, nullable=False),
    Column("description", String(140), nullable=False),  # remittance information
    Column("counterparty_name", String(140), nullable=False),
    Column("counterparty_iban", String(34), nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Index("ix_bank_entries_account_booked", "account_id", "booked_at", "id"),
    Index("ix_bank_entries_transfer", "transfer_id"),
)

# Payment initiation (bank/payments.py). `approval` is unique: one payment per approved
# payment_initiation detail of a grant (docs/banking-api.md, "Payments"), enforced by the database in
# the transaction that books the transfer. Idempotency records are keyed by (client, key) and written
# in that same transaction.
bank_payments = Table(
    "bank_payments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("approval", String(64), nullable=False, unique=True),  # sha256(grant_id, approved detail)
    Column("client_id", String(255), nullable=False),
    Column("customer", String(64), nullable=False),  # the token's sub
    Column("transfer_id", String(64), ForeignKey("bank_transfers.id"), nullable=False),
    Column("status", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

bank_idempotency = Table(
    "bank_idempotency",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # sha256 of (approval, canonical body)
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),  # the JSON body returned
    Column("created_at", BigInteger, nullable=False),
)
