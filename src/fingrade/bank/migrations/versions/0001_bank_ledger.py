"""the bank's ledger: accounts, transfers, entries

Revision ID: bank0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from fingrade.bank.migrate import tables_exist

revision = "bank0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("bank_accounts", "bank_transfers", "bank_entries")


def upgrade() -> None:
    if tables_exist(TABLES):  # made by the authorization server's migration 0004 before this chain
        return
    op.create_table(
        "bank_accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner_user_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("name", sa.String(length=140), nullable=False),
        sa.Column("holder_name", sa.String(length=140), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("overdraft_limit", sa.BigInteger(), nullable=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "overdraft_limit IS NULL OR (overdraft_limit >= 0 AND balance >= -overdraft_limit)",
            name="ck_bank_accounts_overdraft",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("iban"),
    )
    op.create_index("ix_bank_accounts_owner", "bank_accounts", ["owner_user_id"], unique=False)
    op.create_table(
        "bank_transfers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("debtor_account_id", sa.String(length=64), nullable=False),
        sa.Column("creditor_account_id", sa.String(length=64), nullable=False),
        sa.Column("debtor_iban", sa.String(length=34), nullable=False),
        sa.Column("debtor_name", sa.String(length=140), nullable=False),
        sa.Column("creditor_iban", sa.String(length=34), nullable=False),
        sa.Column("creditor_name", sa.String(length=140), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("remittance", sa.String(length=140), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_bank_transfers_amount"),
        sa.ForeignKeyConstraint(["creditor_account_id"], ["bank_accounts.id"]),
        sa.ForeignKeyConstraint(["debtor_account_id"], ["bank_accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("transfer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booked_at", sa.BigInteger(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("description", sa.String(length=140), nullable=False),
        sa.Column("counterparty_name", sa.String(length=140), nullable=False),
        sa.Column("counterparty_iban", sa.String(length=34), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["bank_accounts.id"]),
        sa.ForeignKeyConstraint(["transfer_id"], ["bank_transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bank_entries_account_booked", "bank_entries", ["account_id", "booked_at", "id"], unique=False)
    op.create_index("ix_bank_entries_transfer", "bank_entries", ["transfer_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bank_entries_transfer", table_name="bank_entries")
    op.drop_index("ix_bank_entries_account_booked", table_name="bank_entries")
    op.drop_table("bank_entries")
    op.drop_table("bank_transfers")
    op.drop_index("ix_bank_accounts_owner", table_name="bank_accounts")
    op.drop_table("bank_accounts")
