"""initial schema

Revision ID: 0001
Revises:
"""
from alembic import op

from fingrade.store.sql.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The first revision creates the tables as schema.py defines them today; later revisions
    # are written as explicit operations and never import schema.py.
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
