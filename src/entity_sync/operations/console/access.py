"""Who may do what in the console: token -> role, the read-only guard, and what views need."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

import structlog
from flask import Flask, abort, g, request

from entity_sync.operations.console.jobs import Jobs
from entity_sync.operations.context import Operations

log = structlog.get_logger("entity_sync.console")
F = TypeVar("F", bound=Callable[..., Any])

OPERATOR = "operator"
READER = "reader"


@dataclass(frozen=True)
class Access:
    """Who may sign in: the operator token, the read-only token, or anyone (insecure-local)."""

    operator_token: str | None
    reader_token: str | None
    insecure_local: bool = False

    def role_of(self, token: str) -> str | None:
        given = token.encode()
        for role, expected in ((OPERATOR, self.operator_token), (READER, self.reader_token)):
            if expected and hmac.compare_digest(given, expected.encode()):
                return role
        return None


@dataclass(frozen=True)
class Console:
    """What the views need: the operations layer for a role, the jobs, the settings."""

    ops: Callable[[str], Operations]  # role -> operations acting as that role
    jobs: Jobs
    access: Access

    def for_request(self) -> Operations:
        return self.ops(str(g.role))


def console_of(app: Flask) -> Console:
    return cast(Console, app.extensions["entity_sync_console"])


def operator_only(view: F) -> F:
    """A view that changes something: refused (403) to the read-only role."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if g.get("role") != OPERATOR:
            log.warning("console action refused", role=g.get("role"), path=request.path)
            abort(403, "The read-only token cannot change anything.")
        return view(*args, **kwargs)

    return cast(F, guarded)
