"""`entity-sync run` as the CLI wires it (Metrics as the loop's and the sync's observer, /metrics,
/healthz, /readyz), in its own process, with the endpoint on 127.0.0.1 and a free port.

    python -m tests.ecosystem.worker_process   # settings from ENTITY_SYNC_*; SIGTERM stops it

The first line on stdout is the endpoint's URL. A process of its own per worker, as in
production. The CLI listens on all interfaces (for containers); tests listen on loopback only.
"""

from __future__ import annotations

import signal
import sys

from entity_sync import logs as wlog
from entity_sync.bootstrap import build
from entity_sync.operations.cli.common import load_settings
from entity_sync.runtime.health import HealthServer, Readiness
from entity_sync.runtime.metrics import Metrics


def main() -> int:
    settings = load_settings()
    wlog.configure(settings.log_level, settings.log_format)
    app = build(settings)
    try:
        readiness = Readiness.of(app, cache_seconds=0)
        with (
            Metrics(
                engine=app.engine,
                settings=settings,
                readiness=readiness.ready,
                queue_cache_seconds=0,
            ) as metrics,
            HealthServer(metrics.registry, readiness.checks, port=0, host="127.0.0.1") as server,
        ):
            sys.stdout.write(server.url + "\n")
            sys.stdout.flush()
            app.upgrade_database()
            signal.signal(signal.SIGTERM, app.stop)
            app.run(observer=metrics, sync_observer=metrics)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
