"""``triage console`` (the web console) and ``triage console add-user``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from triage.console.auth import ROLES


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/console"),
    show_default=True,
    help="Where the read model and the accounts are kept (SQLite).",
)
@click.option("--rebuild", is_flag=True, help="Rebuild the read model from the topics.")
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap (default: TRIAGE_KAFKA_BOOTSTRAP)."
)
@click.option(
    "--session-hours", type=click.FloatRange(0.1, 24), default=8.0, show_default=True,
    help="Sessions expire after this many hours.",
)  # fmt: skip
@click.option("--secure-cookies", is_flag=True, help="Cookies only over HTTPS (behind TLS).")
@click.pass_context
def console(
    ctx: click.Context,
    host: str,
    port: int,
    data_dir: Path,
    rebuild: bool,
    bootstrap: str | None,
    session_hours: float,
    secure_cookies: bool,
) -> None:
    """The on-call desk's web console: open work, cases, actions, supervisor view."""
    if ctx.invoked_subcommand is not None:
        return
    from triage.console.server import ConsoleConfig, ConsoleServer
    from triage.observability.logging import configure_logging, log_names
    from triage.settings import load_settings

    settings = load_settings(**({"kafka_bootstrap": bootstrap} if bootstrap else {}))
    if settings.kafka_bootstrap is None:
        raise click.UsageError("no broker: pass --bootstrap or set TRIAGE_KAFKA_BOOTSTRAP")
    configure_logging(settings.log_format, settings.log_level, log_names(settings))
    config = ConsoleConfig(
        host=host, port=port, data_dir=data_dir, rebuild=rebuild,
        session_hours=session_hours, secure_cookies=secure_cookies,
    )  # fmt: skip
    server = ConsoleServer(settings, config)
    click.echo(f"console at http://{host}:{port}/ (data in {data_dir})", err=True)
    server.serve_forever()


@console.command("add-user")
@click.option("--username", required=True)
@click.option("--responder-id", required=True, help="The person's responder id (R-…).")
@click.option("--role", type=click.Choice(ROLES), default="responder", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/console"),
    show_default=True,
)
def add_user(
    username: str, responder_id: str, role: str, password_stdin: bool, data_dir: Path
) -> None:
    """Create (or replace) a local account; the password is stored as a scrypt hash."""
    import re

    from triage.console.auth import hash_password
    from triage.console.server import ACCOUNTS_FILE
    from triage.console.store import Accounts

    if not re.fullmatch(r"R-[0-9A-Z]{2,32}", responder_id):
        raise click.UsageError("--responder-id must look like R-1234 (R-, then 2-32 of 0-9 A-Z)")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise click.UsageError("the password must have at least 10 characters")
    accounts = Accounts(data_dir / ACCOUNTS_FILE)
    try:
        accounts.add_user(responder_id, username, hash_password(password), role)
    finally:
        accounts.close()
    click.echo(f"account {username} ({responder_id}, {role}) saved in {data_dir}")
