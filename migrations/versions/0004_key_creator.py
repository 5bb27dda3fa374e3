"""key creator: the key that created a key, whose rate limit the new key counts against too

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 16:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_key_id", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_api_keys_created_by_key_id", ["created_by_key_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_api_keys_created_by_key_id_api_keys",
            "api_keys",
            ["created_by_key_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint("fk_api_keys_created_by_key_id_api_keys", type_="foreignkey")
        batch_op.drop_index("ix_api_keys_created_by_key_id")
        batch_op.drop_column("created_by_key_id")
