"""``crmkit serve`` (the REST API) and ``crmkit forms`` (lead-capture forms)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from crmkit.cli.context import cli_state
from crmkit.cli.display import echo_json, echo_table
from crmkit.cli.parameters import split_names
from crmkit.services.forms import DEFAULT_FIELDS, FormInfo

#: How the trusted proxies reach the server process (``crmkit.api.serving`` reads it).
TRUSTED_PROXIES_VARIABLE = "CRMKIT_TRUSTED_PROXIES"


@click.command("serve")
@click.option("--host", metavar="HOST", help="Listen on this address (default: crmkit.api.host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Listen on this port (default: crmkit.api.port)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes (each opens the CRM; form rate limits count per process).",
)
@click.option("--reload", is_flag=True, help="Restart when the code changes (development).")
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log a line per request (default: crmkit.api.access_log, on). Off saves a few"
    " percent of CPU per request under load.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDRESS",
    help="A proxy (address or network, repeatable) whose X-Forwarded-For names the client"
    " (default: crmkit.api.trusted_proxies, none: the connection's address is the client).",
)
def serve_command(
    host: str | None,
    port: int | None,
    workers: int,
    reload: bool,
    access_log: bool | None,
    trusted_proxies: tuple[str, ...],
) -> None:
    """Serve the REST API (uvicorn) until Ctrl-C.

    The interactive API docs are at /schema/swagger, the OpenAPI document at
    /schema/openapi.json. Authenticate with an API token (crmkit tokens issue USER NAME).

    Example:

    \b
        crmkit serve --host 0.0.0.0 --port 8000 --no-access-log
        crmkit serve --trusted-proxy 10.0.0.5   # behind a reverse proxy at 10.0.0.5

    uvicorn uses httptools and uvloop when they are installed (pip install
    'crmkit[serve]').
    """
    import uvicorn

    # Checked before anything is opened or written to the environment the server reads.
    for proxy in trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{proxy!r} is not an IP address or network", param_hint="--trusted-proxy"
            ) from None
    state = cli_state()
    settings = state.settings()
    crm = state.crm()
    crm.require_schema()
    host = host or settings.api.host
    port = port or settings.api.port
    click.echo(f"crmkit API on http://{host}:{port}  (docs: http://{host}:{port}/schema/swagger)")
    # uvicorn imports the app factory by name (crmkit.api is a sibling interface of the CLI,
    # which does not import it); the factory opens the CRM from these variables.
    if state.config:
        os.environ["CRMKIT_CONFIG"] = str(Path(state.config).resolve())
    if state.database_url or not state.config:
        os.environ["CRMKIT_DATABASE_URL"] = settings.database_url
    if trusted_proxies:
        os.environ[TRUSTED_PROXIES_VARIABLE] = ",".join(trusted_proxies)
    state.close()  # the server process opens its own
    uvicorn.run(
        "crmkit.api.serving:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
        access_log=settings.api.access_log if access_log is None else access_log,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by itself; crmkit reads it
        # only from the trusted proxies it is told of (crmkit.api.forms.client_address)
        proxy_headers=False,
    )


@click.group("forms")
def forms_group() -> None:
    """Lead-capture forms: web sites post to /forms/KEY without a token; each submission
    becomes a lead.

    Example:

    \b
        crmkit forms add "官网询价" --fields full_name,company_name,phone,email,inquiry
        crmkit forms snippet KEY > form.html
    """


def _echo_form(form: FormInfo) -> None:
    click.echo(f"Form {form.name!r}: key {form.key}")
    click.echo(f"  fields: {', '.join(form.fields)}")
    click.echo(f"  owner: {form.owner or '(assignment rules)'}  honeypot: {form.honeypot}")


@forms_group.command("add")
@click.argument("name")
@click.option(
    "--fields",
    metavar="A,B,...",
    default=",".join(DEFAULT_FIELDS),
    show_default=True,
    help="Lead fields the form asks for (full_name is always added).",
)
@click.option("--owner", metavar="USER", help="Who owns its leads (default: the assignment rules).")
@click.option("--source-channel", default="web_form", show_default=True, help="Leads' source.")
@click.option(
    "--honeypot",
    default="website_url",
    show_default=True,
    help="The hidden field bots fill in; a submission with it set is dropped silently.",
)
@click.option("--message", default="Thank you, we will be in touch.", help="Answer on success.")
@click.option("--json", "as_json", is_flag=True, help="Print the form as JSON.")
def add_form(
    name: str,
    fields: str,
    owner: str | None,
    source_channel: str,
    honeypot: str,
    message: str,
    as_json: bool,
) -> None:
    """Create a lead-capture form and print its public key.

    Example:

    \b
        crmkit forms add "官网询价" --fields full_name,company_name,phone,email,inquiry --owner li
    """
    form = (
        cli_state()
        .crm()
        .forms.add(
            name,
            split_names([fields]),
            owner=owner,
            source_channel=source_channel,
            honeypot=honeypot,
            success_message=message,
        )
    )
    if as_json:
        echo_json(_form_json(form))
    else:
        _echo_form(form)


def _form_json(form: FormInfo) -> dict[str, object]:
    return {
        "id": form.id,
        "key": form.key,
        "name": form.name,
        "fields": list(form.fields),
        "owner": form.owner,
        "source_channel": form.source_channel,
        "honeypot": form.honeypot,
        "success_message": form.success_message,
        "created_at": form.created_at.isoformat(),
    }


@forms_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_forms(as_json: bool) -> None:
    """List the lead-capture forms and their keys.

    Example:

    \b
        crmkit forms list
    """
    forms = cli_state().crm().forms.list()
    if as_json:
        echo_json([_form_json(form) for form in forms])
        return
    if not forms:
        click.echo("No forms. Create one with: crmkit forms add NAME")
        return
    echo_table(
        ["key", "name", "fields", "owner"],
        [[f.key, f.name, ",".join(f.fields), f.owner or ""] for f in forms],
    )


@forms_group.command("remove")
@click.argument("key_or_name")
def remove_form(key_or_name: str) -> None:
    """Delete a form (by key or name); its leads stay.

    Example:

    \b
        crmkit forms remove 官网询价
    """
    form = cli_state().crm().forms.remove(key_or_name)
    click.echo(f"Removed form {form.name!r} ({form.key})")


@forms_group.command("snippet")
@click.argument("key")
@click.option(
    "--base-url",
    metavar="URL",
    help="Where web sites reach the API (default: crmkit.api.public_url or host:port).",
)
def form_snippet(key: str, base_url: str | None) -> None:
    """Print the embeddable HTML form of KEY.

    Example:

    \b
        crmkit forms snippet AbC123 --base-url https://crm.example.com > form.html
    """
    crm = cli_state().crm()
    click.echo(crm.forms.snippet(key, base_url or crm.settings.api.base_url))
