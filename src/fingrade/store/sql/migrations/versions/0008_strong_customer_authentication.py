"""strong customer authentication: second factors, recovery codes, and how each grant was authenticated

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authn_factors",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("credential_id", sa.String(length=1400), nullable=True, unique=True),
        sa.Column("credential", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_authn_factors_user", "authn_factors", ["user_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.String(length=64), primary_key=True),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_recovery_codes_user", "recovery_codes", ["user_id"])
    # Grants from before carry no record of how the customer authenticated (NULL: a password).
    op.add_column("grants", sa.Column("acr", sa.String(length=64), nullable=True))
    op.add_column("grants", sa.Column("amr", sa.String(length=100), nullable=True))
    op.add_column("grants", sa.Column("linked_details_hash", sa.String(length=64), nullable=True))
    op.add_column("grants", sa.Column("linked_factors", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("linked_factors")
        batch.drop_column("linked_details_hash")
        batch.drop_column("amr")
        batch.drop_column("acr")
    op.drop_index("ix_recovery_codes_user", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index("ix_authn_factors_user", table_name="authn_factors")
    op.drop_table("authn_factors")
