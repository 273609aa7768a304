"""v1 views of the user service: parse, call service.py, serialize."""

from __future__ import annotations

from flask import after_this_request, request, url_for

from common.security import SESSION_COOKIE
from common.settings import get_settings
from common.web import Blueprint, commit, db, require_principal
from common.web.edge import client_address
from common.web.schemas import PageArgs, envelope
from svc_user import service
from svc_user.schemas import (
    LoginSchema,
    SessionCreated,
    SessionSchema,
    UserCreate,
    UserPatch,
    UserReplace,
    UserSchema,
)

users = Blueprint("users", __name__, url_prefix="/v1/users", description="Accounts: register, read, change.")
sessions = Blueprint(
    "sessions",
    __name__,
    url_prefix="/v1/sessions",
    description="Log in once; the token (bearer or cookie) works on every service.",
)


@users.route("", methods=["POST"])
@users.arguments(UserCreate)
@users.response(201, envelope(UserSchema))
@users.errors(409, 429)
def register(body):
    """Register a customer account.

    Registrations are throttled per client address: past `TOKO_REGISTRATION_ADDR_MAX` (20) within
    `TOKO_REGISTRATION_WINDOW_SECONDS` (600), counting names and emails found taken (409) as well as
    accounts made, that address gets 429 `registration_throttled` with `Retry-After`.
    """
    user = service.register(db(), client_address(request.environ), **body)
    return {"data": user}, 201, {"Location": url_for("users.get_user", user_id=user.id)}


@users.route("", methods=["GET"])
@users.auth(admin=True)
@users.arguments(PageArgs, location="query")
@users.response(200, envelope(UserSchema, many=True))
def list_users(args):
    """List active users (admin)."""
    return {"data": service.list_users(db(), **args)}


@users.route("/me", methods=["GET"])
@users.auth
@users.response(200, envelope(UserSchema))
def me():
    """The caller's own account."""
    actor = require_principal()
    return {"data": service.get_visible_user(db(), actor, actor.user_id)}


@users.route("/<int:user_id>", methods=["GET"])
@users.auth
@users.response(200, envelope(UserSchema))
@users.errors(404)
def get_user(user_id):
    """A user: yourself, or anyone for an admin."""
    return {"data": service.get_visible_user(db(), require_principal(), user_id)}


def _update(user_id: int, body: dict, replace: bool):
    actor = require_principal()
    user = service.update_user(
        db(), actor, user_id, body, replace=replace, current_session_id=actor.session_id
    )
    commit()
    return {"data": user}


@users.route("/<int:user_id>", methods=["PUT", "POST"])
@users.auth
@users.arguments(UserReplace)
@users.response(200, envelope(UserSchema))
@users.errors(403, 404, 409)
def replace_user(body, user_id):
    """Replace a user's editable fields (only an admin may set `role`); the rules of PATCH apply."""
    return _update(user_id, body, replace=True)


@users.route("/<int:user_id>", methods=["PATCH"])
@users.auth
@users.arguments(UserPatch)
@users.response(200, envelope(UserSchema))
@users.errors(403, 404, 409)
def patch_user(body, user_id):
    """Change the named fields.

    Changing one's own `password`, `email` or `phone` needs `current_password` (else 422
    `current_password_invalid`); an admin changing another user's needs none. A new `email` or `phone` sets
    `verified` to false. Usernames are unique whatever their case (409). The last active admin cannot be
    demoted (409 `last_admin`).
    """
    return _update(user_id, body, replace=False)


@users.route("/<int:user_id>", methods=["DELETE"])
@users.auth
@users.response(204)
@users.errors(404, 409)
def delete_user(user_id):
    """Deactivate a user: every session of theirs dies at once (never the last active admin: 409)."""
    service.deactivate_user(db(), require_principal(), user_id)
    commit()
    return "", 204


@sessions.route("", methods=["POST"])
@sessions.arguments(LoginSchema)
@sessions.response(201, envelope(SessionCreated))
@sessions.errors(401, 429, 503)
def log_in(body):
    """Log in: the token comes in the body and as the toko_session cookie.

    The username ignores case. A wrong username and a wrong password get the same 401 in the same time.
    Failed logins within a sliding window (`TOKO_LOGIN_WINDOW_SECONDS`, default 600) are throttled with 429
    `login_throttled` and `Retry-After`: past `TOKO_LOGIN_MAX_FAILURES` (5) failures for one username from
    one client address, that address's logins to that username; past `TOKO_LOGIN_ADDR_MAX_FAILURES` (20)
    from one address, that address's logins to any username; past `TOKO_LOGIN_USER_MAX_FAILURES` (100) for
    one username from all addresses, every login to it. Unknown usernames are counted exactly like known
    ones. A successful login forgives that address's failures against that account. The client address is
    the TCP peer, or the one toko's own nginx forwards; never a header a client chose. Password checks run a
    few at a time per worker: when all are busy for a moment, 503 `busy` with `Retry-After`. A login cut
    off by a database fault answers 503 and never counts as a failure.
    """
    outcome = service.log_in(
        db(),
        body["username"],
        body["password"],
        client_addr=client_address(request.environ),
        user_agent=request.headers.get("User-Agent"),
    )

    @after_this_request
    def _set_cookie(response):
        response.set_cookie(
            SESSION_COOKIE,
            outcome.token,
            expires=outcome.row.expires_at,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=get_settings().is_production,
        )
        return response

    return {"data": {"token": outcome.token, "expires_at": outcome.row.expires_at, "user": outcome.user}}, 201


@sessions.route("/current", methods=["GET"])
@sessions.auth
@sessions.response(200, envelope(SessionSchema))
def current_session():
    """The session this request is authenticated with."""
    actor = require_principal()
    user = service.get_visible_user(db(), actor, actor.user_id)
    return {
        "data": {
            "created_at": actor.created_at,
            "expires_at": actor.expires_at,
            "idle_expires_at": actor.idle_expires_at,
            "user": user,
        }
    }


@sessions.route("/current", methods=["DELETE"])
@sessions.auth
@sessions.response(204)
def log_out():
    """Log out: the token is dead on every service at once."""
    service.end_session(db(), require_principal().session_id)
    commit()

    @after_this_request
    def _clear_cookie(response):
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=get_settings().is_production
        )
        return response

    return "", 204
