"""The `oms` command: migrate, manage API keys, load demo data, serve, work the queue."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import click

from adapters import migrations
from adapters.bootstrap import Services, build_services
from adapters.queue import run_worker
from adapters.settings import PROJECT_ROOT, Settings
from engine import access
from engine.errors import OmsError

DEMO_KEY_NAME = "demo-admin"
DEMO_KEY_FILE = PROJECT_ROOT / "instance" / "demo-api-key"


@contextmanager
def _services() -> Iterator[Services]:
    built = build_services(Settings.from_env())
    try:
        yield built
    finally:
        built.close()


@click.group()
def main() -> None:
    """Order management service. Settings come from OMS_* environment variables."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema of OMS_DATABASE_URL."""
    with _services() as built:
        migrations.upgrade(built.engine, revision)
        click.echo(f"database at {sorted(migrations.current_revisions(built.engine))}")


@db.command("current")
def db_current() -> None:
    """Show the schema revision, and whether it is behind the code."""
    with _services() as built:
        click.echo(f"database: {sorted(migrations.current_revisions(built.engine))}")
        click.echo(f"code:     {sorted(migrations.head_revisions(built.engine))}")


@main.group()
def keys() -> None:
    """API keys: stored hashed, shown once."""


@keys.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["system", "analyst", "ops", "admin"]), required=True)
@click.option("--channel", help="For system keys: the one channel this integration acts for.")
def keys_create(name: str, role: str, channel: str | None) -> None:
    """Create a key and print it; it cannot be shown again."""
    with _services() as built, built.uow() as uow:
        try:
            key, plaintext = access.create_api_key(uow, name, role, channel)
        except OmsError as error:
            raise click.ClickException(error.detail) from error
        uow.commit()
    click.echo(f"created key {key.name!r} (role {key.role}"
               f"{', channel ' + key.channel if key.channel else ''}); store it now:")
    click.echo(plaintext)


@keys.command("list")
def keys_list() -> None:
    """List keys (never their values)."""
    with _services() as built, built.uow() as uow:
        for key in access.list_api_keys(uow):
            state = "revoked" if key.revoked_at else "active"
            click.echo(f"{key.name:<24} {key.role:<8} {key.channel or '-':<12} "
                       f"{key.display_prefix}...  {state}")


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Revoke a key; it stops working within seconds on every worker."""
    with _services() as built, built.uow() as uow:
        try:
            access.revoke_api_key(uow, name)
        except OmsError as error:
            raise click.ClickException(error.detail) from error
        uow.commit()
    click.echo(f"revoked {name!r}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--orders", "order_count", default=300, show_default=True,
              help="How many of the Olist sample orders to replay.")
@click.option("--no-serve", is_flag=True, help="Load the data and stop.")
def demo(host: str, port: int, order_count: int, no_serve: bool) -> None:
    """Migrate, load the Olist demo data, print a demo API key, and serve."""
    from api import create_app
    from api.demo import load_demo_data

    settings = Settings.from_env()
    click.echo(f"database: {settings.database_url}")
    with _services() as built:
        migrations.upgrade(built.engine)
        click.echo("loading demo data (Olist public dataset, CC BY-NC-SA 4.0)...")
        load_demo_data(built, order_count, say=click.echo)
        plaintext = _demo_key(built)
    if no_serve:
        click.echo(f"demo API key: {plaintext}")
        return
    app = create_app()
    url = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"  OMS is running at {url}   (API docs: {url}/docs)")
    click.echo(f"  demo API key (admin): {plaintext}")
    click.echo(f"  try: curl -H 'Authorization: Bearer {plaintext}' {url}/orders?limit=2")
    click.echo("")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def _demo_key(built: Services) -> str:
    """Return the demo admin key: made on the first run, kept in instance/ for the next."""
    keep = DEMO_KEY_FILE
    with built.uow() as uow:
        if keep.exists():
            plaintext = keep.read_text().strip()
        else:
            plaintext = access.KEY_PREFIX + secrets.token_urlsafe(32)
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_text(plaintext + "\n")
            keep.chmod(0o600)
        access.ensure_api_key(uow, DEMO_KEY_NAME, "admin", plaintext)
        uow.commit()
    return plaintext


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve with the development server (use gunicorn in production)."""
    from api import create_app

    create_app().run(host=host, port=port, threaded=True, use_reloader=False)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker on OMS_REDIS_URL's queue."""
    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.ClickException("set OMS_REDIS_URL: without it, jobs run inline")
    with _services() as built:
        if built.redis is None:
            raise click.ClickException("OMS_REDIS_URL did not give a Redis connection")
        run_worker(built.redis, settings.queue_name, burst=burst)


@main.group()
def jobs() -> None:
    """Start maintenance jobs (on the queue, or inline without Redis)."""


@jobs.command("purge-idempotency-keys")
def purge_idempotency_keys() -> None:
    """Forget Idempotency-Keys older than the retention period."""
    with _services() as built:
        built.jobs.enqueue("jobs.maintenance.purge_idempotency_keys", ())
    click.echo("purge started")
