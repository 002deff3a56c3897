"""the bank's payment initiation: payments (one per approval) and idempotency records

Revision ID: bank0002
Revises: bank0001
"""

import sqlalchemy as sa
from alembic import op

from fingrade.bank.migrate import tables_exist

revision = "bank0002"
down_revision = "bank0001"
branch_labels = None
depends_on = None

TABLES = ("bank_payments", "bank_idempotency")


def upgrade() -> None:
    if tables_exist(TABLES):  # made by the authorization server's migration 0005 before this chain
        return
    op.create_table(
        "bank_payments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("approval", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("transfer_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["transfer_id"], ["bank_transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("approval"),
    )
    op.create_table(
        "bank_idempotency",
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("bank_idempotency")
    op.drop_table("bank_payments")
