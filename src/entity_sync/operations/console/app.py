"""The console's Flask app: sign-in by token, roles, CSRF, security headers, error pages.

Safe by default: a session cookie that is HttpOnly and SameSite=Strict (Secure when
ENTITY_SYNC_CONSOLE_SECURE_COOKIE is set), a CSRF token on every POST (Flask-WTF), state
changed only by POST, autoescaping templates (a DLQ body is hostile input), a CSP that allows
only the console's own files, and no token in any page or log line.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import structlog
from flask import Flask, Response, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.operations.console import failed_views, other_views
from entity_sync.operations.console.access import OPERATOR, READER, Access, Console

log = structlog.get_logger("entity_sync.console")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(console: Console, *, secure_cookie: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),  # per process: a restart signs everyone out
        # __Host-: only over HTTPS, only this host, path / (browsers enforce the prefix).
        SESSION_COOKIE_NAME=("__Host-" if secure_cookie else "") + "entity_sync_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure_cookie,
        WTF_CSRF_TIME_LIMIT=None,  # valid for the session, which ends with the process
        MAX_CONTENT_LENGTH=1_048_576,
    )
    app.extensions["entity_sync_console"] = console
    CSRFProtect(app)
    app.register_blueprint(failed_views.bp)
    app.register_blueprint(other_views.bp)
    app.add_template_filter(_when, "when")
    _auth(app, console.access)
    _hardening(app)
    return app


def _when(value: object) -> str:
    """A time as operators read it: UTC, to the second."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "" if value is None else str(value)


def _auth(app: Flask, access: Access) -> None:
    @app.before_request
    def signed_in() -> Any:
        if request.endpoint in ("login", "static"):
            return None
        role = OPERATOR if access.insecure_local else session.get("role")
        if role not in (OPERATOR, READER):
            return redirect(url_for("login", next=request.full_path))
        g.role = role
        return None

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        error = None
        if request.method == "POST":
            role = access.role_of(request.form.get("token", ""))
            if role is not None:
                session.clear()
                session["role"] = role
                log.info("console sign-in", role=role, remote=request.remote_addr)
                return redirect(_local(request.args.get("next")))
            log.warning("console sign-in refused", remote=request.remote_addr)
            error = "That token is not valid."
        return render_template("login.html", error=error), 401 if error else 200

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"))


def _local(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("failed.groups")


def _hardening(app: Flask) -> None:
    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def csrf_refused(exc: CSRFError) -> Any:
        log.warning("console csrf refused", path=request.path, reason=exc.description)
        return render_template("error.html", message=f"Refused: {exc.description}"), 403

    @app.errorhandler(EntitySyncError)
    def one_line(exc: EntitySyncError) -> Any:
        return render_template("error.html", message=f"{exc.reason}: {exc.message}"), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return render_template("error.html", message=f"{exc.code}: {exc.description}"), exc.code
