"""the bank's payment tables moved to the bank's own migration chain: nothing to do here

This revision created bank_payments and bank_idempotency. The bank now owns its schema
(fingrade/bank/schema.py) and creates them in its own chain (fingrade/bank/migrations), whose second
revision adopts the tables this revision made in databases that have them. The revision stays in
this chain so that databases recorded at it remain valid.

Revision ID: 0005
Revises: 0004
"""

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
