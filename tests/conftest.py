"""Fixtures for real services. Each test gets its own queue prefix and PostgreSQL schema.

Services come from ENTITY_SYNC_TEST_BROKER_URL / ENTITY_SYNC_TEST_DATABASE_URL, defaulting to
the local RabbitMQ and PostgreSQL. Missing services skip locally and FAIL under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from entity_sync import logs as wlog
from tests.support import services

TESTS = Path(__file__).parent
FOLDER_MARKERS = ("unit", "soap", "integration", "chaos", "deploy", "ecosystem")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its folder (tests/<folder>/...), so `-m` selects by folder and no
    test that needs a service is left unmarked; markers a test sets itself are kept."""
    for item in items:
        parts = item.path.relative_to(TESTS).parts if item.path.is_relative_to(TESTS) else ()
        if parts and parts[0] in FOLDER_MARKERS:
            item.add_marker(parts[0])


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    """Info-level console logs (captured by pytest); per-event debug lines stay off."""
    wlog.configure("info", "console")


@pytest.fixture(scope="session")
def broker_url() -> str:
    url = os.environ.get("ENTITY_SYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    services.require(url, "RabbitMQ")
    return url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway database for this test run; dropped at the end."""
    admin = os.environ.get(
        "ENTITY_SYNC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    services.require(admin, "PostgreSQL")
    name = f"es_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    yield url
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def new_database_url(pg_database: str) -> Callable[[], str]:
    """Makes a fresh schema in the run's database per call, selected through the search_path."""

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(pg_database)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        return services.with_search_path(pg_database, schema)

    return make


@pytest.fixture
def database_url(new_database_url: Callable[[], str]) -> str:
    """A fresh schema for this test."""
    return new_database_url()


@pytest.fixture(params=["postgresql", "sqlite"])
def state_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    make: Callable[[], str] = request.getfixturevalue("new_database_url")
    return make()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"es-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def rabbit_cleanup(broker_url: str, prefix: str) -> Iterator[None]:
    yield
    services.delete_topology(broker_url, prefix)


@pytest.fixture
def embedded_dir(tmp_path: Path) -> Path:
    return tmp_path / "embedded"
