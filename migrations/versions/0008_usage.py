"""usage: hourly counts per key and outcome, usage limits with refill

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-04 16:20:00

What is left of a usage limit lives in a table of its own: taking one per request never
changes ``api_keys``, whose changes empty every worker's key cache.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage_limit", sa.JSON(), nullable=True))
    op.create_table(
        "key_usage",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("valid", sa.Integer(), nullable=False),
        sa.Column("rate_limited", sa.Integer(), nullable=False),
        sa.Column("usage_exceeded", sa.Integer(), nullable=False),
        sa.Column("forbidden", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "hour", name=op.f("pk_key_usage")),
    )
    with op.batch_alter_table("key_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_key_usage_hour"), ["hour"], unique=False)
    op.create_table(
        "key_usage_limits",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_key_usage_limits_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_key_usage_limits")),
    )


def downgrade():
    op.drop_table("key_usage_limits")
    with op.batch_alter_table("key_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_key_usage_hour"))
    op.drop_table("key_usage")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("usage_limit")
