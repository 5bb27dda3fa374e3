"""host trust: key scopes, the pairing budget counter, who asked for a challenge

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:30:00

Existing keys keep the management power they had (``["api", "manage"]``), except those an app
got by pairing, which get ``["api"]`` as every new pairing key does.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

api_keys = sa.table("api_keys", sa.column("scopes", sa.JSON()), sa.column("created_via"))


def upgrade():
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scopes", sa.JSON(), nullable=False, server_default='["api"]')
        )
    op.execute(
        api_keys.update()
        .where(api_keys.c.created_via != "pairing")
        .values(scopes=["api", "manage"])
    )
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_agent", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("origin", sa.String(length=200), nullable=True))
    op.execute("DELETE FROM settings WHERE name = 'pairing_budget_since'")


def downgrade():
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.drop_column("origin")
        batch_op.drop_column("user_agent")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("scopes")
    op.drop_table("counters")
