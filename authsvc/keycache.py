"""What deciding on a key needs, kept per process and dropped the moment any of it changes.

A decision needs the key's row, its owner's row, the owner's permissions and organizations,
and the instance settings. Every change to the tables those come from bumps one generation
counter in the same transaction: session events see every flush, every bulk statement and
every row lock, so no code path can forget, and the counter is the first lock every such
change takes (one lock order, so two changes to one key never deadlock). Database triggers bump
it too, so a change made by SQL outside authsvc is seen as well. Every request reads the
counters once (one indexed read through the driver's own cursor, on a connection its thread
keeps) before using the cache, and a generation other than the cached one empties it. A
revocation, suspension, setting, group or restriction change therefore takes effect on the
very next request, in every worker and on every host, while a steady-state request makes that
one read and no other.

Only keys that exist are kept, at most ``MAX_ENTRIES`` of them, least recently used first out.
Unknown keys are never kept (they cannot fill memory); a set of every digest (``digestset``)
refuses most of them without a query. A trigger numbers each new key from a second counter,
``keys``, read with the generation: a worker whose set is behind adds the keys numbered after
the last it saw before it trusts the set, so a key made in any worker is known at once.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import event, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from . import invalidation, settings, users
from .digestset import DigestSet
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
KEYS = "keys"
PROBE = f"SELECT name, value FROM counters WHERE name IN ('{GENERATION}', '{KEYS}')"
COUNTERS_SEEN = "authsvc_counters"  # the request's read, in flask.g
Counters = invalidation.Counters
# Up to this many keys the digest set is built in the request that needs it; above, in a
# thread of its own while requests ask the database.
BUILD_INLINE = 10_000


@dataclass(frozen=True)
class Decision:
    """Everything a key check reads, detached from any session."""

    key: ApiKey
    owner: User | None
    permissions: frozenset[str]
    organization_ids: frozenset[str]
    # (id, rate_limit) of each key up the chain of creators that has a rate limit.
    creator_limits: tuple[tuple[str, dict[str, int]], ...] = ()
    # The encoded answer of a valid check, by the key's last use (api/whoami.py).
    answers: dict[tuple[Any, ...], bytes] = field(default_factory=dict, compare=False, repr=False)


class Probe:
    """One thread's connection for the counters read, and the driver's own cursor on it.

    The driver's cursor, not SQLAlchemy's: the same committed read at a tenth of the cost
    (on PostgreSQL a prepared statement).
    """

    def __init__(self, engine: Engine) -> None:
        self.connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.cursor: Any = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        postgresql = engine.dialect.name == "postgresql"
        self.options: dict[str, bool] = {"prepare": True} if postgresql else {}
        self.errors = engine.dialect.loaded_dbapi.Error

    def read(self) -> Counters:
        """(generation, keys); None for a counter whose row is missing."""
        try:
            self.cursor.execute(PROBE, **self.options)
            return counters(self.cursor.fetchall())
        except self.errors as error:
            raise DBAPIError.instance(PROBE, None, error, self.errors) from error


def counters(rows: list[tuple[str, int]]) -> Counters:
    """(generation, keys) from the probe's rows."""
    values = dict(rows)
    return values.get(GENERATION), values.get(KEYS)


def read_by_listener(connection: Any) -> Counters:
    """The probe on the notify listener's own connection."""
    return counters(connection.execute(PROBE).fetchall())


class KeyCache:
    """One app's decisions, settings and digest set, valid for one generation of the database."""

    def __init__(self, listener: invalidation.Listener | None = None) -> None:
        self.listener = listener
        self.lock = threading.Lock()
        self.generation: int | None = None
        self.decisions: OrderedDict[str, Decision] = OrderedDict()
        self.settings: dict[str, Any] | None = None
        self.local = threading.local()
        self.probes: set[Probe] = set()
        # The digest set and the number up to which it holds every key: one attribute, so
        # that a reader never pairs a set with a number it does not hold.
        self.digest_state: tuple[DigestSet | None, int] = (None, 0)
        self.building = threading.Lock()

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

    def may_exist(self, engine: Engine, digest: str, numbered: int | None) -> bool:
        """False only when no key numbered up to ``numbered`` has this digest."""
        if numbered is None:
            return True
        digests = self.digests_up_to(engine, numbered)
        return digests is None or digest in digests

    def digests_up_to(self, engine: Engine, numbered: int) -> DigestSet | None:
        """The digest set once it holds every key numbered up to ``numbered``; None while it
        does not (the caller asks the database).

        One thread at a time brings it up to date, in place: the keys numbered since the last
        read are added (bits are only ever set, so readers never see one go missing). A first
        set, or one grown past its capacity, is built afresh; above ``BUILD_INLINE`` keys in
        a thread of its own. A counter lower than the set's (reset by hand) leaves the set
        unused: the database answers, as before it existed.
        """
        digests, seen = self.digest_state
        if digests is not None and seen >= numbered:
            return digests
        if not self.building.acquire(blocking=False):
            return None
        handed_over = False
        try:
            digests, seen = self.digest_state
            if digests is None or digests.full:
                with engine.connect() as connection:
                    count = connection.scalar(select(func.count()).select_from(ApiKey)) or 0
                if count <= BUILD_INLINE:
                    return self.fill(engine, numbered, count)
                threading.Thread(
                    target=self.fill_then_release, args=(engine, numbered, count), daemon=True
                ).start()
                handed_over = True
                return None
            if seen > numbered:
                return None
            with engine.connect() as connection:
                for (found,) in connection.execute(
                    select(ApiKey.digest).where(ApiKey.serial > seen)
                ):
                    digests.add(found)
            self.digest_state = (digests, numbered)
            return digests
        finally:
            if not handed_over:
                self.building.release()

    def fill(self, engine: Engine, numbered: int, count: int) -> DigestSet:
        """A new set of every digest, in use from now on."""
        digests = DigestSet(capacity=2 * count)
        with engine.connect() as connection:
            rows = connection.execution_options(yield_per=10_000).execute(select(ApiKey.digest))
            for (found,) in rows:
                digests.add(found)
        self.digest_state = (digests, numbered)
        return digests

    def fill_then_release(self, engine: Engine, numbered: int, count: int) -> None:
        """``fill`` in a thread of its own, which then lets the next update begin."""
        try:
            self.fill(engine, numbered, count)
        finally:
            self.building.release()

    def probe(self) -> Probe:
        """This thread's probe, opened on first use."""
        probe: Probe | None = getattr(self.local, "probe", None)
        if probe is None:
            engine = db.engine
            if not event.contains(engine, "engine_disposed", self.close_probes):
                event.listen(engine, "engine_disposed", self.close_probes)
            probe = Probe(engine)
            self.local.probe = probe
            with self.lock:
                self.probes.add(probe)
        return probe

    def drop_probe(self) -> None:
        """Close this thread's connection after a failure."""
        probe = self.local.__dict__.pop("probe", None)
        if probe is not None:
            with self.lock:
                self.probes.discard(probe)
            probe.connection.close()

    def close_probes(self, _engine: Any = None) -> None:
        """When the engine is disposed (tests, a forked worker), its probes go with it."""
        with self.lock:
            probes, self.probes = self.probes, set()
        for probe in probes:
            probe.connection.invalidate()
        self.local = threading.local()


def cache() -> KeyCache:
    """The current app's cache."""
    store: KeyCache = current_app.extensions["authsvc.keycache"]
    return store


def read_counters() -> Counters:
    """The generation and keys counters as committed when this request first asked (in
    notify mode, as its worker last heard them).

    Read once per request (a verification checks two keys), on a connection each thread keeps
    in autocommit mode: a single round trip, no transaction left open. A failed read drops
    that connection (the next request opens a fresh one) and answers like any database
    failure (503).
    """
    if COUNTERS_SEEN in g:
        seen: Counters = g.get(COUNTERS_SEEN)
        return seen
    store = cache()
    found = store.listener.counters() if store.listener is not None else None
    if found is None:
        found = probe_counters(store)
    setattr(g, COUNTERS_SEEN, found)
    return found


def probe_counters(store: KeyCache) -> Counters:
    """The counters read from the database on this thread's probe."""
    try:
        return store.probe().read()
    except DBAPIError:
        store.drop_probe()
        raise


def lookup(digest: str) -> tuple[Decision | None, dict[str, Any]]:
    """The decision for a key digest and the instance settings; (None, {}) for an unknown key.

    The counters are read first and everything else after them, each in a session of its
    own: what is kept was read no earlier than the generation it is kept under.
    """
    store = cache()
    generation, numbered = read_counters()
    store.sync(generation)
    decision = store.get(digest)
    values = store.settings
    if decision is not None and values is not None:
        return decision, values
    if decision is None and not store.may_exist(db.engine, digest, numbered):
        if store.listener is None:
            return None, {}
        # A key made a moment ago may not have been heard of yet: ask the database.
        _, numbered = probe_counters(store)
        if not store.may_exist(db.engine, digest, numbered):
            return None, {}
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
    listener = None
    if invalidation.mode(app) == "notify":
        listener = invalidation.Listener(app.config["SQLALCHEMY_DATABASE_URI"], read_by_listener)
    app.extensions["authsvc.keycache"] = KeyCache(listener)
    if not event.contains(Session, "before_flush", bump_on_flush):
        event.listen(Session, "before_flush", bump_on_flush)
        event.listen(Session, "do_orm_execute", bump_on_statement)
