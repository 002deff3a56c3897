"""how a grant's access tokens are sender-constrained, kept with its refresh token (RFC 9449 §5, RFC 8705 §3)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before: NULL (unknown); a public client's DPoP-bound token is still known by dpop_jkt.
    op.add_column("refresh_tokens", sa.Column("binding", sa.String(length=8), nullable=True))
    op.execute("UPDATE refresh_tokens SET binding = 'dpop' WHERE dpop_jkt IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("binding")
