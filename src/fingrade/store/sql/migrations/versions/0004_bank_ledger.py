"""the bank's ledger tables moved to the bank's own migration chain: nothing to do here

This revision created bank_accounts, bank_transfers and bank_entries. The bank now owns its schema
(fingrade/bank/schema.py) and creates them in its own chain (fingrade/bank/migrations), whose first
revision adopts the tables this revision made in databases that have them. The revision stays in
this chain so that databases recorded at it remain valid.

Revision ID: 0004
Revises: 0003
"""

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
