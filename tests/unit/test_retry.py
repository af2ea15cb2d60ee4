"""The retry policy: taxonomy, schedule, per-queue overrides, and the delay queues it needs."""

from __future__ import annotations

import pytest

from entity_sync.config import Settings
from entity_sync.handlers.errors import InvalidMessage, Rejected, RetryLater, TransientError
from entity_sync.runtime import retry
from entity_sync.runtime.topology import Names, retry_queues


def test_permanent_errors_are_dead_lettered_at_once_and_the_rest_retried() -> None:
    assert retry.is_permanent(Rejected("no", reason="shared_object_delete"))
    assert retry.is_permanent(InvalidMessage("bad"))
    assert not retry.is_permanent(RetryLater("later"))
    assert not retry.is_permanent(TransientError("down"))
    assert not retry.is_permanent(ValueError("surprise"))  # unexpected: worth a retry


def test_schedule_grows_then_repeats_its_last_delay_until_max_attempts() -> None:
    policy = retry.QueuePolicy(max_attempts=6, delays=(1, 5, 30))
    # attempts_before = x-attempts on the message (failed deliveries so far)
    assert [policy.decide(n, permanent=False) for n in range(6)] == [1, 5, 30, 30, 30, None]
    assert policy.decide(0, permanent=True) is None


def test_one_attempt_means_no_retry() -> None:
    assert retry.QueuePolicy(max_attempts=1).decide(0, permanent=False) is None


def test_per_queue_overrides_replace_only_what_they_name() -> None:
    settings = Settings(
        prefix="p",
        retry_delays="2,4",
        max_attempts=3,
        retry_per_queue={"object-shared": {"max_attempts": 9}, "entity-admin": {"delays": [7]}},
    )
    assert retry.policy_for(settings, "p.object-shared") == retry.QueuePolicy(9, (2, 4))
    assert retry.policy_for(settings, "p.entity-admin") == retry.QueuePolicy(3, (7,))
    assert retry.policy_for(settings, "p.sync-request") == retry.QueuePolicy(3, (2, 4))
    delays = retry.delay_queues(settings)
    assert delays == {"p.object-shared": (2, 4), "p.entity-admin": (7,), "p.sync-request": (2, 4)}


@pytest.mark.parametrize("bad", ["", "1,,2", "0,5", "a", "1,100000"])
def test_bad_delays_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="retry_delays"):
        Settings(retry_delays=bad)


def test_rabbitmq_delay_queues_dead_letter_back_to_their_source_after_the_ttl() -> None:
    [q5, q30] = retry_queues("p.object-shared", [30, 5, 5], rabbit=True)
    assert q5.name == Names.retry_queue("p.object-shared", 5) == "p.object-shared.retry.5s"
    assert q5.queue_arguments == {  # type: ignore[attr-defined]
        "x-queue-type": "quorum",
        "x-message-ttl": 5000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "p.object-shared",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert q30.queue_arguments["x-message-ttl"] == 30_000  # type: ignore[attr-defined]
