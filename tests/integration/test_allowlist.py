"""Who may publish: only AMQP user_ids on a queue's allowlist, checked on the real broker."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pika
import pytest

from tests.integration.harness import processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, collect, pika_params
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def two_users(broker_url: str) -> Iterator[tuple[str, str]]:
    """Two broker users allowed on the vhost; deleted afterwards."""
    users = (f"es-allowed-{uuid.uuid4().hex[:6]}", f"es-other-{uuid.uuid4().hex[:6]}")
    vhost = pika_params(broker_url).virtual_host
    try:
        for user in users:
            _ctl("add_user", user, "pw-" + user)
            _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"rabbitmqctl cannot manage users of the test broker: {exc}")
    yield users
    for user in users:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60)


def _publisher(broker_url: str, prefix: str, user: str) -> PikaPublisher:
    pub = PikaPublisher.__new__(PikaPublisher)
    params = pika_params(broker_url)
    params.credentials = pika.PlainCredentials(user, "pw-" + user)
    pub.conn = pika.BlockingConnection(params)
    pub.channel = pub.conn.channel()
    pub.channel.confirm_delivery()
    pub.exchange = f"{prefix}.in"
    return pub


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_only_listed_publishers_reach_the_rules(
    broker_url: str, database_url: str, prefix: str, two_users: tuple[str, str]
) -> None:
    allowed, other = two_users
    settings = settings_for(
        prefix, broker_url, database_url, allowed_publishers={"entity-admin": [allowed]}
    )
    with running_worker(settings) as (app, _worker):
        good = _publisher(broker_url, prefix, allowed)
        bad = _publisher(broker_url, prefix, other)
        first = sc.entity("global", ["USD"])
        refused = sc.entity("t-1", ["USD"])
        anonymous = sc.entity("t-2", ["USD"])
        good.publish(*first, user_id=allowed)
        bad.publish(*refused, user_id=other)
        bad.publish(*anonymous)  # no user_id at all
        wait_for(lambda: processed(app) == 1, what="the allowed event applied")
        letters = collect(broker_url, f"{prefix}.entity-admin.dlq", 2)
        assert {d.message_id for d in letters} == {
            refused[1]["event_id"],
            anonymous[1]["event_id"],
        }
        for letter in letters:
            assert letter.headers["x-error-type"] == "publisher_not_allowed"
            assert letter.headers["x-exception-type"] == "PublisherNotAllowed"
            assert letter.headers["x-attempts"] == 1
        by_id = {d.message_id: d for d in letters}
        assert by_id[refused[1]["event_id"]].headers["x-original-user-id"] == other
        assert other in by_id[refused[1]["event_id"]].headers["x-error-message"]
        # Queues not on the list accept anyone.
        bad.publish(*sc.obj("product", "p-1", 1, {"name": "n"}), user_id=other)
        wait_for(lambda: processed(app) == 2, what="object-shared accepts anyone")
        assert processed(app) == 2
        good.close()
        bad.close()
