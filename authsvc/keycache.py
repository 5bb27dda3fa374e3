"""What deciding on a key needs, kept per process and dropped the moment any of it changes.

A decision needs the key's row, its owner's row, the owner's permissions and organizations,
and the instance settings. Every change to the tables those come from bumps one generation
counter in the same transaction: session events see every flush, every bulk statement and
every row lock, so no code path can forget, and the counter is the first lock every such
change takes (one lock order, so two changes to one key never deadlock). Every request reads
the counter once (one primary-key read, on a connection its thread keeps) before using the
cache, and a value other than the cached one empties it. A revocation, suspension, setting,
group or restriction change therefore takes effect on the very next request, in every worker
and on every host, while a steady-state request makes that one read and no other.

Only keys that exist are kept (unknown tokens are looked up every time, so they cannot fill
memory), at most ``MAX_ENTRIES`` of them, least recently used first out.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from . import settings, users
from .extensions import db
from .models import ApiKey, Counter, User

GENERATION = "generation"
MAX_ENTRIES = 10_000
# Tables whose rows decide on a key.
WATCHED = frozenset(
    {
        "api_keys",
        "users",
        "groups",
        "group_members",
        "organizations",
        "organization_members",
        "settings",
    }
)
# A new key or user changes no decision already made: nothing cached can depend on a row
# that did not exist, and unknown keys are never cached.
NEW_ROWS_DECIDE_NOTHING = (ApiKey, User)
# Recording a key's use changes no decision.
USE_COLUMNS = frozenset({"last_used_at", "last_used_ip"})
RECORDS_USE = "authsvc_records_use"
PROBE = f"SELECT value FROM counters WHERE name = '{GENERATION}'"
GENERATION_SEEN = "authsvc_generation"  # the request's read, in flask.g


@dataclass(frozen=True)
class Decision:
    """Everything a key check reads, detached from any session."""

    key: ApiKey
    owner: User | None
    permissions: frozenset[str]
    organization_ids: frozenset[str]
    # (id, rate_limit) of each key up the chain of creators that has a rate limit.
    creator_limits: tuple[tuple[str, dict[str, int]], ...] = ()


class KeyCache:
    """One app's decisions and settings, valid for one generation of the database."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation: int | None = None
        self.decisions: OrderedDict[str, Decision] = OrderedDict()
        self.settings: dict[str, Any] | None = None
        self.local = threading.local()
        self.probes: set[Connection] = set()

    def sync(self, generation: int | None) -> None:
        """Forget everything unless it was read at ``generation``."""
        with self.lock:
            if generation != self.generation or generation is None:
                self.generation = generation
                self.decisions.clear()
                self.settings = None

    def get(self, digest: str) -> Decision | None:
        with self.lock:
            decision = self.decisions.get(digest)
            if decision is not None:
                self.decisions.move_to_end(digest)
            return decision

    def put(self, generation: int | None, digest: str, decision: Decision) -> None:
        """Keep ``decision`` unless the generation moved on while it was being read."""
        with self.lock:
            if generation is None or generation != self.generation:
                return
            self.decisions[digest] = decision
            if len(self.decisions) > MAX_ENTRIES:
                self.decisions.popitem(last=False)

    def put_settings(self, generation: int | None, values: dict[str, Any]) -> None:
        with self.lock:
            if generation is not None and generation == self.generation:
                self.settings = values

    def probe_connection(self) -> Connection:
        """This thread's connection for the generation read, opened on first use."""
        connection: Connection | None = getattr(self.local, "connection", None)
        if connection is None:
            engine = db.engine
            if not event.contains(engine, "engine_disposed", self.close_probe_connections):
                event.listen(engine, "engine_disposed", self.close_probe_connections)
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.local.connection = connection
            with self.lock:
                self.probes.add(connection)
        return connection

    def drop_probe_connection(self) -> None:
        """Close this thread's connection after a failure."""
        connection = self.local.__dict__.pop("connection", None)
        if connection is not None:
            with self.lock:
                self.probes.discard(connection)
            connection.close()

    def close_probe_connections(self, _engine: Any = None) -> None:
        """When the engine is disposed (tests, a forked worker), its probes go with it."""
        with self.lock:
            probes, self.probes = self.probes, set()
        for connection in probes:
            connection.invalidate()
        self.local = threading.local()


def cache() -> KeyCache:
    """The current app's cache."""
    store: KeyCache = current_app.extensions["authsvc.keycache"]
    return store


def read_generation() -> int | None:
    """The counter as committed when this request first asked; None where its row is missing
    (then nothing is cached).

    Read once per request (a verification checks two keys), on a connection each thread keeps
    in autocommit mode: a single round trip, no transaction left open. A failed read drops
    that connection (the next request opens a fresh one) and answers like any database
    failure (503).
    """
    if GENERATION_SEEN in g:
        return g.get(GENERATION_SEEN)
    store = cache()
    connection = store.probe_connection()
    try:
        value = connection.exec_driver_sql(PROBE).scalar()
    except DBAPIError:
        store.drop_probe_connection()
        raise
    generation = None if value is None else int(value)
    setattr(g, GENERATION_SEEN, generation)
    return generation


def lookup(digest: str) -> tuple[Decision | None, dict[str, Any]]:
    """The decision for a key digest (None for an unknown key) and the instance settings.

    The generation is read first and everything else after it, each in a session of its own:
    what is kept was read no earlier than the generation it is kept under.
    """
    store = cache()
    generation = read_generation()
    store.sync(generation)
    decision = store.get(digest)
    values = store.settings
    if decision is not None and values is not None:
        return decision, values
    with Session(db.engine) as session:
        if values is None:
            values = settings.read(session)
            store.put_settings(generation, values)
        if decision is None:
            decision = load(session, digest, values)
            if decision is not None:
                store.put(generation, digest, decision)
    return decision, values


def load(session: Session, digest: str, values: dict[str, Any]) -> Decision | None:
    """Read one key's decision from the database."""
    key = session.scalar(select(ApiKey).where(ApiKey.digest == digest))
    if key is None:
        return None
    owner = session.get(User, key.owner_id)
    if owner is None:
        return Decision(key, None, frozenset(), frozenset())
    return Decision(
        key=key,
        owner=owner,
        permissions=users.granted_permissions(session, owner, values["default_permissions"]),
        organization_ids=frozenset(users.organization_ids(owner, session)),
        creator_limits=creator_limits(session, key),
    )


def creator_limits(session: Session, key: ApiKey) -> tuple[tuple[str, dict[str, int]], ...]:
    """The rate limits of the keys that created this one, its creator's creator and so on."""
    found = []
    creator = session.get(ApiKey, key.created_by_key_id) if key.created_by_key_id else None
    while creator is not None:
        if creator.rate_limit:
            found.append((creator.id, creator.rate_limit))
        creator = (
            session.get(ApiKey, creator.created_by_key_id) if creator.created_by_key_id else None
        )
    return tuple(found)


def bump(session: Session) -> None:
    """Add one to the generation in the session's transaction, creating the row if missing."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Counter).values(name=GENERATION, value=1)
    statement = statement.on_conflict_do_update(
        index_elements=[Counter.name], set_={"value": Counter.value + 1}
    )
    session.connection().execute(statement)


def changes_decisions(session: Session) -> bool:
    """Whether a flush writes anything a cached decision may depend on."""
    for instance in session.new:
        if inspect(instance).mapper.local_table.name in WATCHED and not isinstance(
            instance, NEW_ROWS_DECIDE_NOTHING
        ):
            return True
    for instance in session.deleted:
        if inspect(instance).mapper.local_table.name in WATCHED:
            return True
    for instance in session.dirty:
        state = inspect(instance)
        if state.mapper.local_table.name not in WATCHED:
            continue
        changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
        if changed - USE_COLUMNS:
            return True
    return False


def bump_on_flush(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    if changes_decisions(session):
        bump(session)


def bump_on_statement(state: ORMExecuteState) -> None:
    """Bulk UPDATE and DELETE statements bypass the flush; see them here.

    A row lock on a watched table (``SELECT ... FOR UPDATE``, taken to change the row) bumps
    first too. The counter is thus the first lock of every change to a watched row, whichever
    way it is made: two changes to one key wait for each other in one order, never in
    opposite orders (a deadlock).
    """
    if state.execution_options.get(RECORDS_USE):
        return
    if state.is_update or state.is_delete:
        tables = {getattr(getattr(state.statement, "table", None), "name", None)}
    elif state.is_select and getattr(state.statement, "_for_update_arg", None) is not None:
        tables = {table.name for mapper in state.all_mappers for table in mapper.tables}
    else:
        return
    if tables & WATCHED:
        bump(state.session)


def init_app(app: Flask) -> None:
    """Give the app its cache; watch every session for changes that decide on keys."""
    app.extensions["authsvc.keycache"] = KeyCache()
    if not event.contains(Session, "before_flush", bump_on_flush):
        event.listen(Session, "before_flush", bump_on_flush)
        event.listen(Session, "do_orm_execute", bump_on_statement)
