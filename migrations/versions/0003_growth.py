"""growth: indexes for the list filters and the purge, the key cache's generation counter

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:45:00

``ix_api_keys_owner_id_created_at`` replaces ``ix_api_keys_owner_id``: its leading column serves
every lookup by owner. The ``generation`` counter starts at 0 unless a row is already there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (table, index, columns) created by this revision
INDEXES = [
    ("api_keys", "ix_api_keys_owner_id_created_at", ["owner_id", "created_at"]),
    ("challenges", "ix_challenges_expires_at", ["expires_at"]),
    ("sessions", "ix_sessions_expires_at", ["expires_at"]),
    ("sessions", "ix_sessions_ended_at", ["ended_at"]),
    ("group_members", "ix_group_members_user_id", ["user_id"]),
    ("organization_members", "ix_organization_members_user_id", ["user_id"]),
]


def upgrade():
    for table, index, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(index, columns, unique=False)
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_owner_id")
    op.execute(
        sa.text(
            "INSERT INTO counters (name, value) SELECT 'generation', 0"
            " WHERE NOT EXISTS (SELECT 1 FROM counters WHERE name = 'generation')"
        )
    )


def downgrade():
    op.execute(sa.text("DELETE FROM counters WHERE name = 'generation'"))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_owner_id", ["owner_id"], unique=False)
    for table, index, _columns in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(index)
