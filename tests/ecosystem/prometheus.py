"""Debian's Prometheus server on a free 127.0.0.1 port, with a temporary config and storage,
and its HTTP API (instant and range queries, rules)."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.ecosystem import tools
from tests.support.waiting import wait_for

Vector = dict[frozenset[tuple[str, str]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Prometheus:
    url: str
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as resp:  # noqa: S310
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> Vector:
        """An instant query's vector (or scalar, as the empty label set)."""
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        data = self.api("/api/v1/query", **params)
        if data["resultType"] == "scalar":
            return {frozenset(): float(data["result"][1])}
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> dict[frozenset[tuple[str, str]], list[float]]:
        data = self.api(
            "/api/v1/query_range",
            query=expr,
            start=f"{start:.3f}",
            end=f"{end:.3f}",
            step=str(step),
        )
        return {
            frozenset(r["metric"].items()): [float(v) for _, v in r["values"]]
            for r in data["result"]
        }

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:  # noqa: S310
                return int(resp.status) == 200
        except OSError:
            return False


def stop(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextmanager
def running_prometheus(
    workdir: Path, targets: list[str], rule_files: list[Path], scrape_seconds: int = 1
) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` (host:port on loopback) every `scrape_seconds`."""
    exe = tools.executable("prometheus")
    tools.version("prometheus", [exe, "--version"])
    interval = f"{scrape_seconds}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "entity-sync",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        wait_for(
            lambda: server.ready() or proc.poll() is not None,
            60,
            "Prometheus to be ready",
            status=lambda: log.read_text()[-2000:],
        )
        assert proc.poll() is None, log.read_text()[-2000:]
        yield server
    finally:
        stop(proc, 30)
