"""Response shapes for the OpenAPI document: what the 201 answers carry (SPEC §6)."""

from typing import Any, Literal

from pydantic import BaseModel


class RateLimit(BaseModel):
    requests: int
    per_seconds: int


class KeyResource(BaseModel):
    """An API key, without its secret."""

    object: Literal["api_key"]
    id: str
    name: str
    display: str
    owner: str
    organization: str | None
    allowed_endpoints: list[str] | None
    allowed_ips: list[str] | None
    rate_limit: RateLimit | None
    enabled: bool
    meta: dict[str, Any]
    scopes: list[str]
    created_at: str
    created_via: str
    expires_at: str | None
    last_used_at: str | None
    last_used_ip: str | None
    revoked_at: str | None


class KeyCreated(KeyResource):
    """A new key with its secret, shown in this answer only."""

    api_key: str


class UserResource(BaseModel):
    id: str
    username: str
    role: str
    suspended: bool
    created_at: str


class GroupPermissions(BaseModel):
    api_keys: bool
    verify_keys: bool


class GroupResource(BaseModel):
    id: str
    name: str
    permissions: GroupPermissions
    members: list[str]


class OrganizationResource(BaseModel):
    id: str
    name: str
    description: str | None
    members: list[str]
