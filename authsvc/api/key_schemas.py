"""Request models of the key endpoints; the checks themselves live in ``keyfields``."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from .. import keyfields
from ..clock import utcnow
from .schemas import Name

ExpiryTime = Annotated[
    datetime, BeforeValidator(keyfields.parse_time), AfterValidator(keyfields.future_time)
]
Rule = Annotated[StrictStr, Field(max_length=256), AfterValidator(keyfields.endpoint_rule)]
Network = Annotated[StrictStr, Field(max_length=64), AfterValidator(keyfields.network)]
Meta = Annotated[dict[str, Any], AfterValidator(keyfields.small_meta)]
Scopes = Annotated[
    list[Literal["api", "manage"]],
    Field(min_length=1, max_length=2),
    AfterValidator(keyfields.distinct_scopes),
]
MAX_ENTRIES = 100
# Set on a key, but kept apart from its columns (see authsvc.usage_limits).
USAGE_LIMIT = "usage_limit"
MAX_GRACE_SECONDS = 30 * 24 * 3600


class OptionalBody(BaseModel):
    """A body that may be left out entirely (AnythingLLM clients send none)."""

    @model_validator(mode="before")
    @classmethod
    def empty_body(cls, data: Any) -> Any:
        return {} if data is None else data


class RateLimit(BaseModel):
    requests: StrictInt = Field(ge=1, le=1_000_000_000)
    per_seconds: StrictInt = Field(ge=1, le=365 * 24 * 3600)


class Refill(BaseModel):
    interval: Literal["day", "month"]
    amount: StrictInt = Field(ge=1, le=1_000_000_000)


class UsageLimit(BaseModel):
    remaining: StrictInt = Field(ge=0, le=1_000_000_000)
    refill: Refill | None = None


class KeyFields(OptionalBody):
    """Fields shared by creation and change; ``organization`` is stored as ``organization_id``."""

    organization: StrictStr | None = None
    allowed_endpoints: list[Rule] | None = Field(None, max_length=MAX_ENTRIES)
    allowed_ips: list[Network] | None = Field(None, max_length=MAX_ENTRIES)
    rate_limit: RateLimit | None = None
    usage_limit: UsageLimit | None = None
    expires_at: ExpiryTime | None = None
    meta: Meta | None = None
    scopes: Scopes | None = None

    def column(self, name: str) -> Any:
        """One field as the ApiKey column stores it."""
        if name in ("rate_limit", "usage_limit"):
            value = getattr(self, name)
            return value.model_dump() if value else None
        if name == "meta":
            return self.meta or {}
        return getattr(self, "organization" if name == "organization_id" else name)


class KeyCreate(KeyFields):
    name: Name = "API key"
    enabled: StrictBool = True
    expires_in_days: StrictInt | None = Field(None, ge=1, le=36500)

    @model_validator(mode="after")
    def one_expiry(self) -> "KeyCreate":
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expires_at or expires_in_days, not both")
        return self

    def fields(self, default_scopes: tuple[str, ...] = keyfields.API) -> dict[str, Any]:
        """The new key's columns; ``scopes`` left out take the endpoint's default."""
        values = {name: self.column(name) for name in (*keyfields.SETTABLE, USAGE_LIMIT)}
        values["scopes"] = self.scopes or list(default_scopes)
        if self.expires_in_days is not None:
            values["expires_at"] = utcnow() + timedelta(days=self.expires_in_days)
        return values


class AdminKeyCreate(KeyCreate):
    user_id: StrictStr


class KeyPatch(KeyFields):
    name: Name | None = None
    enabled: StrictBool | None = None

    @model_validator(mode="after")
    def not_null(self) -> "KeyPatch":
        for name in ("name", "enabled", "scopes"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """Only the columns the client sent."""
        sent = {
            "organization_id" if name == "organization" else name for name in self.model_fields_set
        }
        names = (*keyfields.SETTABLE, USAGE_LIMIT)
        return {name: self.column(name) for name in names if name in sent}


class RotateBody(OptionalBody):
    grace_seconds: StrictInt = Field(0, ge=0, le=MAX_GRACE_SECONDS)
