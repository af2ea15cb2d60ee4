"""The state store: every SQL statement of the worker, one module per aggregate.

engine.py      engines and the state locks (advisory locks a batch takes first)
tables.py      the tables (SQLAlchemy Core); migrations/ their history (Alembic), migrate.py
sql.py         what the modules share: chunking, bulk insert and upsert, `IN`
mapping.py     `RowMap`: a record's fields to its table's columns, by name
sharing.py     the sharing state (entities, links, settings, levels, sources, copies)
decisions.py   the decision log
processed.py   processed event ids (dedupe) and their pruning
jobs.py        bulk jobs (backfills, releases)
outbox.py      outbox rows (publish after commit)
sync_store.py  sync sessions and the one-sync-per-object locks
failed.py      failed messages ingested from the DLQs
audit.py       the history of replays and purges
queries.py     read-side queries for operators
"""
