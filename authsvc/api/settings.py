"""Instance settings and the audit log (owner or admin)."""

from typing import Any

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from .. import audit, settings
from ..auth import Caller, require_admin_api, require_caller, require_role
from ..listing import PageQuery, page
from .resources import AuditList, Settings
from .schemas import SECURITY, errors, ok

api = APIBlueprint("settings", __name__, abp_tags=[Tag(name="settings")])
ERRORS = errors(400, 401, 403)


class AuditQuery(PageQuery):
    type: str | None = Field(None, max_length=32)
    user_id: str | None = Field(None, max_length=40)
    key_id: str | None = Field(None, max_length=40)


class SettingsBody(BaseModel):
    """Any subset of the settings object; unknown fields are ignored."""

    model_config = {"extra": "allow"}


def require_owner_or_admin() -> Caller:
    """The owner, or an admin in multi-user mode."""
    caller = require_caller()
    require_role(caller, "admin")
    return caller


@api.get("/v1/settings", security=SECURITY, responses=ok(Settings, ERRORS))
def get_settings() -> dict[str, Any]:
    """The instance settings."""
    require_owner_or_admin()
    return settings.public()


@api.patch("/v1/settings", security=SECURITY, responses=ok(Settings, ERRORS))
def patch_settings(body: SettingsBody) -> dict[str, Any]:
    """Merge the given settings and return them all."""
    caller = require_owner_or_admin()
    return settings.update(settings.validate(body.model_dump()), caller.user.id)


def audit_page(query: AuditQuery) -> dict[str, Any]:
    """One page of the audit log, newest first."""
    events = audit.events_query(query.type, query.user_id, query.key_id)
    return page(events, query, audit.event_to_dict)


@api.get("/v1/audit", security=SECURITY, responses=ok(AuditList, ERRORS))
def get_audit(query: AuditQuery) -> dict[str, Any]:
    """The audit log, filterable by type, user and key."""
    require_owner_or_admin()
    return audit_page(query)


@api.get("/v1/admin/audit", security=SECURITY, responses=ok(AuditList, ERRORS))
def get_admin_audit(query: AuditQuery) -> dict[str, Any]:
    """The audit log under the admin prefix (multi-user mode)."""
    require_admin_api()
    return audit_page(query)
