"""device authorizations: challenges of kind ``device`` (RFC 8628)

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-04 16:00:00

Existing challenges are of kind ``code`` (the Anytype pairing). A device challenge keeps its
user code, the SHA-256 digest of its device code (never the code itself), the scope asked for,
its polling interval and last poll, and the narrowing the host chose when approving it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = [
    sa.Column("kind", sa.String(length=16), nullable=False, server_default="code"),
    sa.Column("user_code", sa.String(length=8), nullable=True),
    sa.Column("device_code_digest", sa.String(length=64), nullable=True),
    sa.Column("scope", sa.String(length=64), nullable=True),
    sa.Column("poll_interval", sa.Integer(), nullable=True),
    sa.Column("last_polled_at", sa.DateTime(), nullable=True),
    sa.Column("grant", sa.JSON(), nullable=True),
]
UNIQUE = ["user_code", "device_code_digest"]


def upgrade():
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.add_column(column)
        for name in UNIQUE:
            batch_op.create_unique_constraint(op.f(f"uq_challenges_{name}"), [name])


def downgrade():
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        for name in reversed(UNIQUE):
            batch_op.drop_constraint(op.f(f"uq_challenges_{name}"), type_="unique")
        for column in reversed(COLUMNS):
            batch_op.drop_column(column.name)
