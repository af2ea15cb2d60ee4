"""The one place that builds the application from settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from handlers.sharing.service import SharingContext
from worker.batch import BatchProcessor
from worker.config import Settings
from worker.consumer import Worker
from worker.db import migrate
from worker.db.engine import create_engine
from worker.topology import Names


@dataclass
class App:
    settings: Settings
    engine: Engine
    names: Names

    def sharing_worker(self) -> Worker:
        processor = BatchProcessor(
            self.engine,
            SharingContext(global_entity=self.settings.global_entity),
            self.names.out_exchange,
            max_body_bytes=self.settings.max_body_bytes,
            max_attempts=self.settings.max_attempts,
        )
        queues = [self.names.entity_admin, self.names.object_shared]
        return Worker(self.settings, self.engine, processor, queues)

    def upgrade_database(self) -> tuple[str | None, str | None]:
        return migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings | None = None) -> App:
    settings = settings or Settings()
    if settings.embedded_broker or settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return App(settings, create_engine(settings.database_url), Names(settings.prefix))
