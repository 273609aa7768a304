"""The `toko` command: migrations, operators' accounts, demo data, workers."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from common.db.session import driver_url, session_scope
from common.settings import SettingsError, get_settings
from toko.demo import DEMO_ADMIN

# What libpq and the server say when they refuse a login (password, peer, ident or no pg_hba.conf entry).
_REFUSED_LOGIN = ("authentication failed", "no password supplied", "no pg_hba.conf entry")


def database_problem(exc: DBAPIError, database_url: str) -> str:
    """What failed, where, and what to do, in two lines instead of a traceback."""
    url = make_url(driver_url(database_url))
    where = f"{url.host or 'localhost'}:{url.port or 5432}, database {url.database!r} as {url.username!r}"
    reason = (
        str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if str(exc).strip()
        else type(exc).__name__
    )
    lowered = reason.lower()
    if "does not exist" in lowered and "database" in lowered:
        advice = "create it with `toko db-ensure` (make run does)"
    elif any(words in lowered for words in _REFUSED_LOGIN):
        advice = (
            "PostgreSQL refused the login: give DATABASE_URL the user's password, or let that user in "
            "without one from 127.0.0.1 (a `trust` line in pg_hba.conf, as toko's development setup expects)"
        )
    elif "role" in lowered and "does not exist" in lowered:
        advice = "that user does not exist on the server: create it (createuser -s NAME) or name another one"
    elif (
        "connection refused" in lowered
        or "could not connect" in lowered
        or "timeout" in lowered
        or "could not translate host name" in lowered
    ):
        advice = "start PostgreSQL there (scripts/pg-up) or point DATABASE_URL at a running server"
    elif "permission denied" in lowered:
        advice = "run it as a role with the needed rights (DATABASE_URL names the schema's owner)"
    else:
        advice = "check that DATABASE_URL names a running PostgreSQL, migrated (toko migrate)"
    return f"PostgreSQL at {where}: {reason}\n  {advice}"


class TokoGroup(click.Group):
    """Every command reports a database failure as a short explanation and exits 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            command = ctx.invoked_subcommand or ""
            raise click.ClickException(
                f"toko {command} failed: {database_problem(exc, get_settings().database_url)}"
            ) from None


def _explain(exc) -> str:
    """An ApiError as one sentence: its message plus each field's complaints."""
    fields = (exc.details or {}).get("fields") or {}
    complaints = "; ".join(
        f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
        for name, msgs in fields.items()
    )
    return f"{exc.message} ({complaints})" if complaints else exc.message


@click.group(cls=TokoGroup)
def main() -> None:
    """toko: a shop backend as shared-database microservices."""
    try:
        get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("db-ensure")
def db_ensure() -> None:
    """Create the database named by DATABASE_URL when it does not exist."""
    url = make_url(driver_url(get_settings().database_url))
    admin = create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
                click.echo(f"created database {url.database}")
    except DBAPIError as exc:
        server = url.set(database="postgres").render_as_string(hide_password=False)
        raise click.ClickException(f"toko db-ensure failed: {database_problem(exc, server)}") from None
    finally:
        admin.dispose()


@main.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Bring the database schema up to date (Alembic)."""
    from common.db.migrate import upgrade

    upgrade(get_settings().database_url, revision)
    click.echo(f"database at {revision}")


@main.command("create-user")
@click.argument("username")
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--role", type=click.Choice(["customer", "admin"]), default="customer", show_default=True)
@click.option("--email", default=None, help="Defaults to USERNAME@toko.local.")
@click.option("--phone", default=None)
def create_user_cmd(username: str, password: str, role: str, email: str | None, phone: str | None) -> None:
    """Create a user (the first admin, for instance)."""
    from marshmallow import ValidationError

    from common.errors import ApiError
    from svc_user.schemas import UserCreate
    from svc_user.service import create_user

    given = {"username": username, "email": email or f"{username}@toko.local", "password": password}
    try:
        # The API's own rules for a new account, so that an operator cannot make one a client could not.
        fields = UserCreate().load({**given, "phone": phone})
    except ValidationError as exc:
        complaints = "; ".join(f"{name}: {' '.join(map(str, msgs))}" for name, msgs in exc.messages.items())
        raise click.ClickException(f"That account breaks a rule ({complaints}).") from None
    try:
        with session_scope() as session:
            user = create_user(session, **fields, role=role)
            click.echo(f"created {role} {user.username} (id {user.id})")
    except ApiError as exc:
        raise click.ClickException(_explain(exc)) from None


# Each worker's module; its make_worker() builds it. Program names are svc_<this key>.
WORKERS = {
    "otp": "svc_otp.worker",
    "transaction": "svc_transaction.worker",
    "report": "svc_report.worker",
    "report_projector": "svc_report.projection",
}


@main.command()
@click.argument("service", type=click.Choice(list(WORKERS)))
def worker(service: str) -> None:
    """Run a service's background worker (supervisor runs one program per worker)."""
    import importlib

    from common.worker import run_worker

    module = importlib.import_module(WORKERS[service])
    run_worker(module.make_worker())


# Each worker's queue, read by the service that owns it (its /metrics publishes the same rows).
_QUEUES = {"otp": "svc_otp.service", "transaction": "svc_transaction.service", "report": "svc_report.jobs"}


@main.command()
def status() -> None:
    """The workers' queues: how much waits in each and the age of the oldest, read as each owner reads it."""
    import importlib

    click.echo(f"{'service':<12} {'queue':<13} {'state':<13} {'count':>7} {'oldest':>9}")
    for service, module in _QUEUES.items():
        with session_scope(service) as session:
            for queue, state, count, oldest in importlib.import_module(module).queue_depths(session):
                click.echo(f"{service:<12} {queue:<13} {state:<13} {count:>7} {oldest:>8.0f}s")


# Every consumer of the outbox, by name: the module whose `projector`-like factory builds it.
CONSUMERS = {"svc_report_projector": ("svc_report.projection", "projector")}


def _consumer(name: str):
    import importlib

    module, factory = CONSUMERS[name]
    return getattr(importlib.import_module(module), factory)()


@main.group("events", invoke_without_command=True)
@click.pass_context
def events(ctx: click.Context) -> None:
    """The outbox's depth, each consumer's position and lag, and the dead letters."""
    if ctx.invoked_subcommand is not None:
        return
    from common.events.outbox import utc
    from common.events.status import overview

    with session_scope() as session:
        seen = overview(session, CONSUMERS)
    click.echo(f"outbox: {seen.events} events, newest {utc(seen.newest) or '-'}; depth {seen.depth}")
    for c in seen.consumers:
        click.echo(
            f"consumer {c.name}: position ({c.tx_id}, {c.seq}), {c.backlog} behind, "
            f"lag {c.lag_seconds:.3f} s, moved {utc(c.updated_at) or 'never'}"
        )
    click.echo(f"dead letters: {len(seen.dead_letters)}")
    for d in seen.dead_letters:
        click.echo(f"  {d.event_id} {d.type or '?'} for {d.consumer}, {utc(d.at)}: {d.reason}")


@events.command("replay")
@click.argument("event_id", type=click.UUID)
@click.option("--consumer", type=click.Choice(sorted(CONSUMERS)), help="Only this consumer's dead letter.")
def events_replay(event_id, consumer: str | None) -> None:
    """Apply a dead letter again; it leaves the dead letters once applied."""
    with session_scope() as session:
        names = list(
            session.scalars(
                text("SELECT consumer FROM event_dead_letters WHERE event_id = :id ORDER BY consumer"),
                {"id": event_id},
            )
        )
    names = [name for name in names if consumer in (None, name)]
    if not names:
        raise click.ClickException(f"no dead letter {event_id}" + (f" for {consumer}" if consumer else ""))
    failed = []
    for name in names:
        if name not in CONSUMERS:
            failed.append(f"{name}: no such consumer here")
            continue
        with session_scope() as session:
            try:
                applied = _consumer(name).replay(session, event_id)
            except LookupError:
                failed.append(f"{name}: the event is no longer in the outbox")
                continue
            reason = (
                None
                if applied
                else session.scalar(
                    text("SELECT reason FROM event_dead_letters WHERE consumer = :c AND event_id = :id"),
                    {"c": name, "id": event_id},
                )
            )
        if applied:
            click.echo(f"applied {event_id} for {name}")
        else:
            failed.append(f"{name}: {reason}")
    if failed:
        raise click.ClickException(f"{event_id} is still a dead letter: " + "; ".join(failed))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the services listen.")
@click.option(
    "--item-id", type=int, default=None, help="The item everyone buys (default: a cheap one in stock)."
)
def demo(host: str, item_id: int | None) -> None:
    """Play the seed's story (dwi buys 10 times, will 50, eko cannot log in) against the running services."""
    import requests

    from toko.demo import STORY, Demo

    ports = get_settings().ports
    player = Demo(*(f"http://{host}:{ports[s]}" for s in ("user", "item", "transaction")), echo=click.echo)
    try:
        for username, password, _ in STORY[:2]:
            player.ensure_customer(username, password)
        needed = sum(n for _, _, n in STORY)
        item = (
            requests.get(f"http://{host}:{ports['item']}/v1/items/{item_id}", timeout=10).json()["data"]
            if item_id
            else player.pick_item(get_settings().otp_threshold, needed)
        )
        player.play(item)
    except (requests.RequestException, RuntimeError) as exc:
        raise click.ClickException(f"{exc} (are the services running? `make run`)") from None


@main.command("api-docs")
@click.option("--check", is_flag=True, help="Fail when docs/api.md differs from what the code documents.")
def api_docs(check: bool) -> None:
    """Write docs/api.md from the five services' OpenAPI documents."""
    from toko.apidocs import PATH, documents, render

    text = render(documents())
    if check:
        if not PATH.exists() or PATH.read_text() != text:
            raise click.ClickException(f"{PATH} is out of date: run `make docs`")
        return
    PATH.write_text(text)
    click.echo(f"wrote {PATH}")


_CONFIG = click.option(
    "-c",
    "--config",
    "config",
    default="supervisord.conf",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The supervisord configuration.",
)


@main.command()
@_CONFIG
def preflight(config: Path) -> None:
    """Refuse to start when toko already runs here or a port it needs is taken (make run's first step)."""
    from toko.launch import LaunchError, Supervisor
    from toko.launch import preflight as check

    try:
        check(get_settings(), Supervisor(config))
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@_CONFIG
def supervise(config: Path) -> None:
    """Run every program under supervisord in the foreground; exit 1 when one cannot start."""
    from toko.launch import LaunchError, Supervisor
    from toko.launch import supervise as run

    try:
        status = run(get_settings(), Supervisor(config), echo=click.echo)
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(status)


@main.command()
def gateway() -> None:
    """Run the nginx gateway in the foreground (supervisor's `gateway` program)."""
    from pathlib import Path

    from toko.gateway import exec_nginx

    exec_nginx(get_settings(), Path.cwd() / "var" / "gateway")


@main.command()
@click.option(
    "--user", default=None, help="Started as root, run as this system user (PgBouncer refuses root)."
)
def pgbouncer(user: str | None) -> None:
    """Run PgBouncer (transaction pooling) in the foreground, in front of DATABASE_URL's server."""
    from pathlib import Path

    from toko.pgbouncer import exec_pgbouncer

    exec_pgbouncer(get_settings(), Path.cwd() / "var" / "pgbouncer", user)


DEMO_CUSTOMERS = [("dwi", "dwi-password-123"), ("will", "will-password-123")]
DEMO_CATALOGUE = {
    "Sembako": [
        ("BRS-5KG", "Beras 5 kg", 75000, 500),
        ("MYK-2L", "Minyak goreng 2 L", 38000, 500),
        ("GLA-1KG", "Gula pasir 1 kg", 17000, 800),
    ],
    "Elektronik": [("HP-A15", "Ponsel A15", 2499000, 50), ("EARBUD-1", "Earbud nirkabel", 299000, 200)],
    "Pakaian": [("BTK-M", "Kemeja batik M", 185000, 120), ("SRG-L", "Sarung L", 95000, 150)],
}


@main.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has users.")
def seed_demo(if_empty: bool) -> None:
    """Seed an admin, a few customers, categories and items."""
    from common.db.models import Category, Item, User
    from svc_user.service import create_user

    with session_scope() as session:
        if if_empty and session.execute(select(User.id).limit(1)).first():
            click.echo("database already has data; not seeding")
            return
        username, password = DEMO_ADMIN
        create_user(
            session, username=username, email=f"{username}@toko.local", password=password, role="admin"
        )
        for name, pw in DEMO_CUSTOMERS:
            create_user(session, username=name, email=f"{name}@toko.local", password=pw)
        for category_name, items in DEMO_CATALOGUE.items():
            category = Category(name=category_name)
            session.add(category)
            session.flush()
            for sku, name, price, stock in items:
                session.add(Item(sku=sku, name=name, price=price, stock=stock, category_id=category.id))
    click.echo(f"seeded demo data; admin login: {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
