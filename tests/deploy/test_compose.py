"""deploy/compose.yaml parses and references only images, files, ports and variables that exist."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

from entity_sync.operations.cli.main import cli
from tests.deploy.conftest import DEPLOY, PINNED, ROOT, load_yaml

PROJECT_IMAGE = "entity-sync:dev"
EXPECTED = {"rabbitmq", "postgres", "worker", "billing-sandbox", "crm-sandbox", "prometheus"}


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports") or []}


def test_every_service_of_the_issue_is_there(compose: dict[str, Any]) -> None:
    assert EXPECTED | {"grafana"} <= set(compose["services"])


def test_images_are_pinned_or_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if image == PROJECT_IMAGE:
            build = service["build"]
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT, name
            assert (context / build["dockerfile"]).is_file(), name
        else:
            assert "build" not in service, name
            assert PINNED.match(image), f"{name}: {image} is not pinned to a version"


def test_environment_names_only_real_settings(
    compose: dict[str, Any], settings_env: set[str]
) -> None:
    for name, service in compose["services"].items():
        if service["image"] != PROJECT_IMAGE:
            continue
        unknown = {k for k in _env(service) if k.startswith("ENTITY_SYNC")} - settings_env
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"


def test_the_worker_serves_metrics_on_its_configured_port(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    port = int(_env(worker)["ENTITY_SYNC_METRICS_PORT"])
    assert port in _container_ports(worker)
    assert worker["command"] == ["run"]
    assert int(worker["stop_grace_period"].rstrip("s")) >= 30
    for dependency in ("rabbitmq", "postgres", "billing-sandbox", "crm-sandbox"):
        assert worker["depends_on"][dependency]["condition"] == "service_healthy"


def test_worker_urls_point_at_services_and_ports_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = _env(services["worker"])
    broker = urlsplit(env["ENTITY_SYNC_BROKER_URL"])
    assert broker.hostname == "rabbitmq"
    assert broker.port in _container_ports(services["rabbitmq"])
    database = urlsplit(env["ENTITY_SYNC_DATABASE_URL"])
    postgres = _env(services["postgres"])
    assert database.hostname == "postgres"
    assert database.port in _container_ports(services["postgres"])
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    for kind in ("billing", "crm"):
        endpoint = urlsplit(env[f"ENTITY_SYNC_{kind.upper()}_ENDPOINT"])
        sandbox = services[f"{kind}-sandbox"]
        assert endpoint.hostname == f"{kind}-sandbox"
        assert endpoint.port in _container_ports(sandbox)
        command = sandbox["command"]
        assert command[:2] == ["sandbox", kind]
        assert int(command[command.index("--port") + 1]) == endpoint.port
        assert env[f"ENTITY_SYNC_{kind.upper()}_USERNAME"] == "sandbox"  # the sandbox default


def test_sandbox_commands_parse_with_the_real_cli(compose: dict[str, Any]) -> None:
    sandbox = cli.commands["sandbox"]
    for kind in ("billing", "crm"):
        args = compose["services"][f"{kind}-sandbox"]["command"]
        command = sandbox.commands[kind]  # type: ignore[attr-defined]
        ctx = command.make_context(kind, list(args[2:]))
        assert ctx.params["host"] == "0.0.0.0"  # noqa: S104 - inside its container, behind 127.0.0.1  # noqa: S104 - reachable from the worker


def test_the_console_parses_with_the_real_cli_and_needs_a_token(compose: dict[str, Any]) -> None:
    console = compose["services"]["console"]
    assert console["profiles"] == ["console"]  # not started by a plain `up`
    args = console["command"]
    ctx = cli.commands["console"].make_context("console", list(args[1:]))
    assert ctx.params["host"] == "0.0.0.0"  # noqa: S104 - inside its container, behind 127.0.0.1
    assert int(ctx.params["port"]) in _container_ports(console)
    assert not ctx.params["insecure_local"]  # so the token is required
    assert _env(console)["ENTITY_SYNC_CONSOLE_TOKEN"].startswith("${ENTITY_SYNC_CONSOLE_TOKEN")
    assert all(str(p).startswith("127.0.0.1:") for p in console["ports"])


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_rabbitmq_loads_the_definitions_and_the_prometheus_plugin(
    compose: dict[str, Any],
) -> None:
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    target = re.search(r"^load_definitions\s*=\s*(\S+)", conf, re.M)
    assert target
    mounts = [str(v).split(":")[1] for v in compose["services"]["rabbitmq"]["volumes"]]
    assert f"{target.group(1)}/10-topology.json" in mounts
    plugins = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_prometheus" in plugins
    assert "rabbitmq_management" in plugins
    assert compose["services"]["rabbitmq"]["image"].endswith("-management")


def test_the_dev_user_password_hash_matches_the_broker_url(compose: dict[str, Any]) -> None:
    broker = urlsplit(_env(compose["services"]["worker"])["ENTITY_SYNC_BROKER_URL"])
    users = json.loads((DEPLOY / "rabbitmq" / "dev-users.json").read_text())
    (user,) = [u for u in users["users"] if u["name"] == broker.username]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    raw = base64.b64decode(user["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert hashlib.sha256(salt + (broker.password or "").encode()).digest() == digest
    assert broker.path == "//"  # kombu's spelling of vhost "/"
    assert any(p["user"] == user["name"] and p["vhost"] == "/" for p in users["permissions"])


def test_prometheus_scrapes_services_of_the_compose_file(compose: dict[str, Any]) -> None:
    (config,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    services = compose["services"]
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert "worker:9100" in targets
    for target in targets:
        host, port = target.split(":")
        assert host in services, target
        assert int(port) in _container_ports(services[host]), target
    mounts = [str(v).split(":")[1] for v in services["prometheus"]["volumes"]]
    for rule_file in config["rule_files"]:
        assert rule_file in mounts


def test_grafana_provisions_the_dashboard_and_the_datasource(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(str(v).split(":")[:2] for v in grafana["volumes"])
    (providers,) = load_yaml(
        DEPLOY / "grafana" / "provisioning" / "dashboards" / "entity-sync.yaml"
    )
    path = providers["providers"][0]["options"]["path"]
    local = next(src for src, dst in mounts.items() if dst == path)
    dashboards = list((DEPLOY / local).glob("*.json"))
    assert [d.name for d in dashboards] == ["entity-sync.json"]
    (sources,) = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    source = sources["datasources"][0]
    assert urlsplit(source["url"]).hostname == "prometheus"
    dashboard = json.loads(dashboards[0].read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
    assert uids == {source["uid"]}
