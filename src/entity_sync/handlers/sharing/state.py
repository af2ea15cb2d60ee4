"""The sharing state one transaction works on: in memory, filled lazily from a loader.

Unit tests use it with no loader (everything in memory is everything there is). The database
adapter prefetches what a batch needs and serves the rest on demand through `StateLoader`.
Every write is tracked, so the adapter flushes exactly the rows that changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from entity_sync.handlers.sharing.model import (
    TYPE_ORDER,
    Acceptance,
    Copy,
    CopyKey,
    Decision,
    Entity,
    Link,
    SourceKey,
    SourceObject,
)

if TYPE_CHECKING:
    from entity_sync.handlers.sharing.rules import TargetView


class StateLoader(Protocol):
    def load_sources(self, keys: Collection[SourceKey]) -> list[SourceObject]: ...
    def load_sources_of_type(self, object_type: str) -> list[SourceObject]: ...
    def load_sources_page(
        self, object_types: Sequence[str], after: SourceKey | None, limit: int
    ) -> list[SourceObject]: ...
    def load_copies(self, keys: Collection[SourceKey]) -> list[Copy]: ...
    def load_copies_page(
        self, connection_id: str, object_type: str, after: str | None, limit: int
    ) -> list[Copy]: ...


@dataclass
class Dirty:
    entities: set[str] = field(default_factory=set)
    connections: set[str] = field(default_factory=set)
    acceptance: set[str] = field(default_factory=set)
    levels: set[str] = field(default_factory=set)
    sources: set[SourceKey] = field(default_factory=set)
    copies: set[CopyKey] = field(default_factory=set)


class SharingState:
    def __init__(self, loader: StateLoader | None = None) -> None:
        self.loader = loader
        self.entities: dict[str, Entity] = {}
        self.connections: dict[str, Link] = {}
        self.acceptance: dict[str, Acceptance] = {}  # target -> accounting_period acceptance
        self.levels: dict[str, str] = {}
        self.sources: dict[SourceKey, SourceObject] = {}
        self.copies: dict[CopyKey, Copy] = {}
        self.decisions: list[Decision] = []
        self.dirty = Dirty()
        self.writes = 0  # lets callers see whether a failed event had already changed state
        # What the rules see of each target (send.target_view), derived from `entities` and
        # `acceptance`: kept for the batch, dropped when either changes for that target.
        self.target_views: dict[str, TargetView] = {}
        self._looked_up: set[SourceKey] = set()
        self._types_loaded: set[str] = set()
        self._copies_loaded: set[SourceKey] = set()

    # --- loading ---------------------------------------------------------------------------

    def add_loaded_sources(self, rows: Iterable[SourceObject], keys: Iterable[SourceKey]) -> None:
        for row in rows:
            self.sources.setdefault(row.key, row)
        self._looked_up.update(keys)

    def add_loaded_copies(self, rows: Iterable[Copy], keys: Iterable[SourceKey]) -> None:
        for row in rows:
            self.copies.setdefault(row.key, row)
        self._copies_loaded.update(keys)

    def prefetch(self, keys: Collection[SourceKey]) -> None:
        """Load sources (with parents) and their copies in bulk for a batch of events."""
        if self.loader is None:
            return
        level = list(dict.fromkeys(keys))
        while level:  # the keys, then their parents, then theirs (at most three levels)
            wanted = [k for k in level if k not in self._looked_up]
            if wanted:
                self.add_loaded_sources(self.loader.load_sources(wanted), wanted)
            parents = [_parent_key(s) for k in level if (s := self.sources.get(k)) and s.parent_id]
            level = list(dict.fromkeys(parents))
        everything = [k for k in self._looked_up if k not in self._copies_loaded]
        if everything:
            self.add_loaded_copies(self.loader.load_copies(everything), everything)

    # --- reads -----------------------------------------------------------------------------

    def source(self, object_type: str, object_id: str) -> SourceObject | None:
        key = (object_type, object_id)
        if key not in self._looked_up and object_type not in self._types_loaded and self.loader:
            self.add_loaded_sources(self.loader.load_sources([key]), [key])
        return self.sources.get(key)

    def sources_of_type(self, object_type: str) -> list[SourceObject]:
        if object_type not in self._types_loaded and self.loader:
            rows = self.loader.load_sources_of_type(object_type)
            self.add_loaded_sources(rows, [r.key for r in rows])
            self._types_loaded.add(object_type)
        found = [s for s in self.sources.values() if s.object_type == object_type]
        return sorted(found, key=lambda s: s.object_id)

    def sources_page(
        self, object_types: Sequence[str], after: SourceKey | None, limit: int
    ) -> list[SourceObject]:
        """Up to `limit` sources of `object_types` after `after` in backfill order (parents
        first, then by id), with their parents and copies loaded: a page of a bulk job."""
        types = sorted(object_types, key=TYPE_ORDER.__getitem__)
        if self.loader is None:
            found = sorted(
                (s for s in self.sources.values() if s.object_type in types),
                key=lambda s: (TYPE_ORDER[s.object_type], s.object_id),
            )
            if after is not None:
                mark = (TYPE_ORDER[after[0]], after[1])
                found = [s for s in found if (TYPE_ORDER[s.object_type], s.object_id) > mark]
            return found[:limit]
        rows = self.loader.load_sources_page(types, after, limit)
        self.add_loaded_sources(rows, [r.key for r in rows])
        self.prefetch([r.key for r in rows])
        return [self.sources[r.key] for r in rows]

    def copies_page(
        self, connection_id: str, object_type: str, after: SourceKey | None, limit: int
    ) -> list[Copy]:
        """Up to `limit` copies of one connection and type after `after`, by source id."""
        after_id = after[1] if after is not None else None
        if self.loader is None:
            found = sorted(
                (
                    c
                    for c in self.copies.values()
                    if c.connection_id == connection_id and c.object_type == object_type
                ),
                key=lambda c: c.source_object_id,
            )
            return [c for c in found if after_id is None or c.source_object_id > after_id][:limit]
        rows = self.loader.load_copies_page(connection_id, object_type, after_id, limit)
        self.add_loaded_copies(rows, [])
        # Their sources in one query (a release compares each copy with its source); parents
        # and other copies are not needed.
        wanted = [
            k for c in rows if (k := (c.object_type, c.source_object_id)) not in self._looked_up
        ]
        if wanted:
            self.add_loaded_sources(self.loader.load_sources(wanted), wanted)
        return [self.copies[c.key] for c in rows]

    def copy(self, connection_id: str, object_type: str, object_id: str) -> Copy | None:
        skey = (object_type, object_id)
        if skey not in self._copies_loaded and self.loader:
            self.add_loaded_copies(self.loader.load_copies([skey]), [skey])
        return self.copies.get((connection_id, object_type, object_id))

    def connected(self) -> list[Link]:
        """Connected connections, ordered by target for deterministic output order."""
        conns = [c for c in self.connections.values() if c.status == "connected"]
        return sorted(conns, key=lambda c: c.target_entity)

    def active_connection(self, target_entity: str) -> Link | None:
        for link in self.connections.values():
            if link.target_entity == target_entity and link.status in ("pending", "connected"):
                return link
        return None

    def first_period_start(self) -> dt.date | None:
        starts = [
            d
            for s in self.sources_of_type("accounting_period")
            if (d := _as_date(s.data.get("start_date"))) is not None
        ]
        return min(starts, default=None)

    # --- writes ----------------------------------------------------------------------------

    def put_entity(self, entity: Entity) -> None:
        self.writes += 1
        self.entities[entity.entity_id] = entity
        self.target_views.pop(entity.entity_id, None)
        self.dirty.entities.add(entity.entity_id)

    def put_connection(self, link: Link) -> None:
        self.writes += 1
        self.connections[link.connection_id] = link
        self.dirty.connections.add(link.connection_id)

    def put_acceptance(self, target: str, acceptance: Acceptance) -> None:
        self.writes += 1
        self.acceptance[target] = acceptance
        self.target_views.pop(target, None)
        self.dirty.acceptance.add(target)

    def put_levels(self, levels: dict[str, str]) -> None:
        for attr, level in levels.items():
            if self.levels.get(attr) != level:
                self.writes += 1
                self.levels[attr] = level
                self.dirty.levels.add(attr)

    def put_source(self, source: SourceObject) -> None:
        self.writes += 1
        self.sources[source.key] = source
        self._looked_up.add(source.key)
        self.dirty.sources.add(source.key)

    def put_copy(self, copy: Copy) -> None:
        self.writes += 1
        key = copy.key
        self.copies[key] = copy
        self.dirty.copies.add(key)

    def record(self, decision: Decision) -> None:
        self.writes += 1
        self.decisions.append(decision)


def _parent_key(source: SourceObject) -> SourceKey:
    parent_type = {"product_rate_plan": "product", "product_rate_plan_charge": "product_rate_plan"}
    return (parent_type[source.object_type], source.parent_id or "")


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None
