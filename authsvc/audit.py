"""Recording and reading security events (SPEC §7)."""

from typing import Any

from flask import has_request_context, request
from sqlalchemy import Select, or_, select

from . import metrics
from .clock import iso
from .extensions import db
from .models import AuditEvent

# Every event type authsvc records (SPEC §7), for filters that offer them.
EVENT_TYPES = [
    "challenge.created",
    "challenge.claimed",
    "challenge.denied",
    "challenge.burned",
    "pairing.failed",
    "pairing.succeeded",
    "pairing.locked",
    "key.created",
    "key.updated",
    "key.rotated",
    "key.revoked",
    "login.succeeded",
    "login.failed",
    "user.created",
    "user.updated",
    "user.deleted",
    "group.changed",
    "organization.changed",
    "settings.updated",
]


def client_ip() -> str | None:
    """The client address of the current request, if there is one."""
    return request.remote_addr if has_request_context() else None


def record(
    event_type: str,
    *,
    actor_id: str | None = None,
    subject_user_id: str | None = None,
    key_id: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an event to the current transaction; the caller commits it with its change."""
    event = AuditEvent(
        type=event_type,
        actor_id=actor_id,
        subject_user_id=subject_user_id,
        key_id=key_id,
        client_ip=client_ip(),
        details=details,
    )
    db.session.add(event)
    metrics.count_audit_event(event_type)
    return event


def events_query(
    event_type: str | None = None, user_id: str | None = None, key_id: str | None = None
) -> Select[Any]:
    """Events newest first, filtered by type, user (actor or subject) and key."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if event_type:
        query = query.where(AuditEvent.type == event_type)
    if user_id:
        query = query.where(
            or_(AuditEvent.actor_id == user_id, AuditEvent.subject_user_id == user_id)
        )
    if key_id:
        query = query.where(AuditEvent.key_id == key_id)
    return query


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    """The audit event resource."""
    return {
        "id": str(event.id),
        "type": event.type,
        "created_at": iso(event.created_at),
        "actor_id": event.actor_id,
        "subject_user_id": event.subject_user_id,
        "key_id": event.key_id,
        "client_ip": event.client_ip,
        "details": event.details or {},
    }
