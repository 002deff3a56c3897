"""The bank's table definitions: its own MetaData, created by its own Alembic chain
(fingrade/bank/migrations, version table `bank_alembic_version`), apart from the authorization
server's schema (store/sql/schema.py) even when both live in one database.

The authorization server never reads these tables. Money is integer minor units (cents)
everywhere. `owner_user_id` is the authorization server's users.id, i.e. the access token's `sub`;
there is deliberately no foreign key to `users`, so the bank can also run on a database of its own.
The CHECK on bank_accounts backs the conditional UPDATE in bank/ledger.py: even a bug there cannot
leave a balance below its overdraft limit.
"""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# -- the ledger: accounts, transfers and their entries -------------------------------------------

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
