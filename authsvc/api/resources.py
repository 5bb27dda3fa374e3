"""Response shapes for the OpenAPI document: what the 201 answers carry (SPEC §6)."""

from typing import Any, Literal

from pydantic import BaseModel, Field


class RateLimit(BaseModel):
    requests: int
    per_seconds: int


class Refill(BaseModel):
    interval: Literal["day", "month"]
    amount: int


class UsageLimit(BaseModel):
    remaining: int
    refill: Refill | None


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
    usage_limit: UsageLimit | None
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


class Pagination(BaseModel):
    total: int
    offset: int
    limit: int
    has_more: bool


class KeyList(BaseModel):
    data: list[KeyResource]
    pagination: Pagination


class KeyWithOwner(KeyResource):
    """A key with its owner's user resource (admin lists)."""

    user: UserResource


class KeyWithOwnerList(BaseModel):
    data: list[KeyWithOwner]
    pagination: Pagination


class UserList(BaseModel):
    data: list[UserResource]
    pagination: Pagination


class GroupList(BaseModel):
    data: list[GroupResource]
    pagination: Pagination


class OrganizationList(BaseModel):
    data: list[OrganizationResource]
    pagination: Pagination


class ServiceInfo(BaseModel):
    name: str
    version: str


class Health(BaseModel):
    status: str
    database: str


class KeyHolder(BaseModel):
    """Who a key is: whoami and forward-auth."""

    authenticated: bool
    key: KeyResource
    user: UserResource


class Space(BaseModel):
    """An organization in Anytype's space shape."""

    object: Literal["space"]
    id: str
    name: str
    description: str | None
    icon: None
    gateway_url: str
    network_id: str


class SpaceList(BaseModel):
    data: list[Space]
    pagination: Pagination


class Verdict(BaseModel):
    valid: bool
    code: Literal[
        "VALID", "NOT_FOUND", "REVOKED", "DISABLED", "EXPIRED", "FORBIDDEN", "RATE_LIMITED"
    ]
    key: KeyResource | None
    user: UserResource | None


class HostChallenge(BaseModel):
    """A pending challenge as the host sees it (``code`` hidden until claimed, multi-user)."""

    challenge_id: str
    kind: Literal["code", "device"]
    scope: str | None
    app_name: str
    created_at: str
    expires_at: str
    attempts_left: int
    client_ip: str | None
    user_agent: str | None
    origin: str | None
    claimed_by: str | None
    code: str | None


class HostChallengeList(BaseModel):
    data: list[HostChallenge]
    pagination: Pagination


class DeviceRequest(BaseModel):
    """A device's pending request as the host judges it."""

    challenge_id: str
    app_name: str
    client_ip: str | None
    user_agent: str | None
    origin: str | None
    scope: str | None
    created_at: str
    expires_at: str
    status: str


class DeviceDecided(BaseModel):
    app_name: str
    client_ip: str | None
    status: Literal["approved", "denied"]


class Claimed(BaseModel):
    code: str
    challenge_id: str


class SessionStarted(BaseModel):
    token: str
    expires_at: str
    user: UserResource
    csrf_token: str = Field(
        description="the web pages' half of their credential, sent as X-CSRF-Token"
    )


class MultiUserEnabled(BaseModel):
    multi_user: bool
    user: UserResource


class Settings(BaseModel):
    enable_api_keys: bool
    pairing_enabled: bool
    pairing_requires_approval: bool
    api_key_endpoint_restrictions_enabled: bool
    api_key_allowed_endpoints: list[str]
    default_permissions: dict[str, bool]
    challenge_ttl_seconds: int
    challenge_max_attempts: int
    one_key_per_organization: bool


class AuditEventResource(BaseModel):
    id: str
    type: str
    created_at: str
    actor_id: str | None
    subject_user_id: str | None
    key_id: str | None
    client_ip: str | None
    details: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditEventResource]
    pagination: Pagination


class UsageCounts(BaseModel):
    valid: int
    rate_limited: int
    usage_exceeded: int
    forbidden: int


class UsageBucket(UsageCounts):
    start: str


class UsageReport(BaseModel):
    """A key's requests by hour or day, oldest first, and their total."""

    data: list[UsageBucket]
    total: UsageCounts
