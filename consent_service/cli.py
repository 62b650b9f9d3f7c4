"""The ``consent-service`` command (contract, "CLI")."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from consent_service import config as service_config

if TYPE_CHECKING:  # imported only when used, so that ``--help`` stays quick
    from flask import Flask

    from consent_service.container import Services
    from consent_service.core.caller import Caller
    from consent_service.errors import ServiceError


def _app() -> Flask:
    from consent_service import create_app

    return create_app()


def _services() -> Services:
    from consent_service.container import EXTENSION

    services: Services = _app().extensions[EXTENSION]
    return services


@click.group(help="consent_service: consent and access control with community rules.")
def main() -> None:
    pass


def _refused(exc: ServiceError) -> click.ClickException:
    """A refusal of the service (no such person, an unusable value) as the command's error
    message and exit status 1, naming the fields at fault, rather than a traceback."""
    details = json.dumps(exc.details) if exc.details else ""
    return click.ClickException(f"{exc.message} {details}".strip())


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply migrations to the configured database (a release step).")
def db_upgrade() -> None:
    from consent_service.storage.migrate import upgrade
    from consent_service.storage.urls import database_url

    settings = service_config.load()
    upgrade(database_url(settings), schema=settings["DB_SCHEMA"])
    from consent_service.services import audit as audit_log

    bound = audit_log.bind_existing_rows(_services(), now=datetime.now(UTC))
    if bound:
        click.echo(f"bound the existing rows to the audit chain ({bound} entries)", err=True)
    click.echo("database is at the latest migration", err=True)
    _record_consent_reviews(_services())


def _record_consent_reviews(services: Services) -> int:
    """Put consents a migration listed for review into the audit chain (the migration lacks its key)."""
    from consent_service.services import consent_reviews

    listed = consent_reviews.record_pending(services, now=datetime.now(UTC))
    if listed:
        click.echo(
            f"{listed} consent(s) listed for review by the organizations that recorded them "
            "(consent-service consents reviews)",
            err=True,
        )
    return listed


@main.group(help="Consents.")
def consents() -> None:
    pass


@consents.command("reviews", help="Consents whose meaning a release changed: ask the person again.")
@click.option("--organization", default=None, help="Only those this organization recorded.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def consents_reviews(organization: str | None, as_json: bool) -> None:
    from consent_service.schemas.consents import ConsentReviewOut
    from consent_service.services import consent_reviews

    services = _services()
    _record_consent_reviews(services)
    for item in consent_reviews.list_for(services, caller=None, organization=organization):
        if as_json:
            click.echo(json.dumps(ConsentReviewOut().dump(item)))
        else:
            click.echo(
                f"{item.recorded_by}\t{item.consent_id}\tv{item.version}\t{item.reason}\t"
                f"{' '.join(item.codes)}"
            )


@main.group("access-requests", help="Data access requests to communities.")
def access_requests() -> None:
    pass


@access_requests.command(
    "expire", help="Record as refused every pending request past its deadline (run daily, e.g. from cron)."
)
def access_requests_expire() -> None:
    from consent_service.services import access_requests as cases

    for record in cases.expire(_services(), now=datetime.now(UTC)):
        click.echo(
            f"{record.id}	{record.community}	{record.requester}	refused: {record.refusal_reason}"
        )


def _operator(organization: str, scope: str) -> Caller:
    from consent_service.core.caller import Caller, Via

    return Caller(organization=organization, client_id="cli", scopes=frozenset({scope}), via=Via.OPERATOR)


@consents.command("import", help="Record the consents of a CSV file or FHIR R4 Bundle (docs/reference.md).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", "organization", required=True, help="the organization that recorded them")
@click.option("--skip-bad", is_flag=True, help="write the good rows and list the bad ones")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "fhir"]), default=None, help="default: from the name"
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def consents_import(file: Path, organization: str, skip_bad: bool, fmt: str | None, as_json: bool) -> None:
    from consent_service.errors import ServiceError
    from consent_service.schemas.consent_files import ImportReportOut
    from consent_service.services import consent_import
    from consent_service.storage import organizations as organization_store

    fmt = fmt or ("fhir" if file.suffix.lower() == ".json" else "csv")
    services = _services()
    with services.reading(None) as session:
        if organization_store.get_organization(session, organization) is None:
            raise click.ClickException(f"No such organization: {organization}")
    data = file.read_bytes()
    rows = data.count(b"\n") if fmt == "csv" else data.count(b'"resourceType"')
    try:
        with click.progressbar(length=max(rows, 1), label="checking rows", file=sys.stderr) as bar:
            report = consent_import.import_file(
                services,
                caller=_operator(organization, "consents:write"),
                data=data,
                fmt=fmt,
                skip_bad=skip_bad,
                now=datetime.now(UTC),
                progress=bar.update,
            )
    except consent_import.ImportRefused as refused:
        for problem in refused.report.problems:
            click.echo(f"line {problem.line}: {problem.field}: {problem.message}", err=True)
        if as_json:
            click.echo(json.dumps(ImportReportOut().dump(refused.report)))
        raise click.ClickException(refused.message) from None
    except ServiceError as exc:
        raise _refused(exc) from None
    for problem in report.problems:
        click.echo(f"skipped line {problem.line}: {problem.field}: {problem.message}", err=True)
    if as_json:
        click.echo(json.dumps(ImportReportOut().dump(report)))
    else:
        click.echo(
            f"{report.recorded} consent(s) recorded, {report.already} already recorded, "
            f"{report.bad} bad row(s) skipped (import {report.import_id})"
        )


@consents.command("export", help="Write an organization's consents as CSV or a FHIR R4 Bundle.")
@click.option("--org", "organization", required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "fhir"]), default="csv", show_default=True)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: stdout"
)
def consents_export(organization: str, fmt: str, output: Path | None) -> None:
    from consent_service.services import consent_export

    services = _services()
    lines = (consent_export.export_csv if fmt == "csv" else consent_export.export_fhir)(
        services, caller=_operator(organization, "consents:read"), now=datetime.now(UTC)
    )
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        for chunk in lines:
            out.write(chunk)
    finally:
        if output:
            out.close()


@main.group(help="Administration.")
def admin() -> None:
    pass


@admin.command("create-client", help="Create a client of organization 'admin' with scope admin.")
@click.option("--name", required=True)
@click.option("--organization", default="admin", show_default=True)
@click.option("--scope", "scopes", multiple=True, default=["admin"], show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
def create_client(name: str, organization: str, scopes: tuple[str, ...], as_json: bool) -> None:
    from consent_service.services import organizations

    client = organizations.create_client(
        _services(),
        caller=None,
        organization=organization,
        name=name,
        scopes=list(scopes),
        now=datetime.now(UTC),
        create_organization_type="other",
    )
    if as_json:
        click.echo(json.dumps({"client_id": client.client_id, "client_secret": client.client_secret}))
    else:
        click.echo(
            f"client_id:     {client.client_id}\nclient_secret: {client.client_secret}\n"
            "(the secret is shown only now)"
        )


@main.group("subject-systems", help="Identifier systems consents are recorded under.")
def subject_systems() -> None:
    pass


@subject_systems.command("add", help="Register a system to an organization (or --shared); docs/upgrading.md.")
@click.argument("system")
@click.option("--organization", default=None, help="the organization it is registered to")
@click.option("--shared", is_flag=True, help="any organization may record under it")
@click.option("--case-insensitive", is_flag=True, help="values compare case-folded")
def subject_systems_add(system: str, organization: str | None, shared: bool, case_insensitive: bool) -> None:
    from consent_service.errors import ServiceError
    from consent_service.schemas.subjects import SubjectSystemOut
    from consent_service.services import subjects

    try:
        added = subjects.register(
            _services(),
            caller=None,
            system=system,
            organization=organization,
            shared=shared,
            case_insensitive=case_insensitive,
            now=datetime.now(UTC),
        )
    except ServiceError as exc:
        raise _refused(exc) from exc
    click.echo(json.dumps(SubjectSystemOut().dump(added)))


@subject_systems.command("list", help="Print the registered systems, one JSON object a line.")
def subject_systems_list() -> None:
    from consent_service.schemas.subjects import SubjectSystemOut
    from consent_service.services import subjects

    for entry in subjects.list_systems(_services(), caller=None).subject_systems:
        click.echo(json.dumps(SubjectSystemOut().dump(entry)))


@admin.command("hint", help="Print how to get a token.")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000)
def hint(host: str, port: int) -> None:
    click.echo(
        f"""
consent_service on http://{host}:{port}  (API docs: http://{host}:{port}/docs)
Get an admin client and a token:
  .venv/bin/consent-service admin create-client --name me --json
  curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials http://{host}:{port}/oauth/token
Or load the example world with ready-to-paste commands:  make demo HOST={host} PORT={port}
""",
        err=True,
    )


@main.command(help="Serve the API with gunicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", default=2, show_default=True)
def serve(host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    from consent_service.log_hygiene import ACCESS_LOG_FORMAT, logging_config
    from consent_service.services import metrics

    settings = service_config.load()
    logconfig = logging_config(settings["LOG_FORMAT"], settings["LOG_LEVEL"])
    metrics.reset_multiprocess_dir()  # before any worker writes its counters there

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")
            self.cfg.set("access_log_format", ACCESS_LOG_FORMAT)
            self.cfg.set("logconfig_dict", logconfig)
            self.cfg.set("child_exit", lambda _server, worker: metrics.worker_exited(worker.pid))

        def load(self) -> Flask:
            return _app()

    Server().run()


@main.group(help="People who sign in to the web pages.")
def users() -> None:
    pass


@users.command("create", help="Create a person of an organization (roles: steward, intake, or scopes).")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--organization", required=True)
@click.option("--role", "roles", multiple=True, required=True, help="steward, intake, or a scope; repeatable")
@click.option("--language", default="en", show_default=True, type=click.Choice(["en", "fr"]))
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for (hidden) when not given; at least 12 characters.",
)
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
def users_create(
    email: str,
    name: str,
    organization: str,
    roles: tuple[str, ...],
    language: str,
    password: str,
    as_json: bool,
) -> None:
    from consent_service.errors import ServiceError
    from consent_service.services import users as cases

    try:
        user = cases.create_user(
            _services(),
            caller=None,
            email=email,
            name=name,
            organization=organization,
            roles=list(roles),
            password=password,
            language=language,
            now=datetime.now(UTC),
        )
    except ServiceError as exc:
        raise _refused(exc) from exc
    if as_json:
        click.echo(
            json.dumps(
                {"id": user.id, "email": user.email, "organization": user.organization, "scopes": user.roles}
            )
        )
    else:
        click.echo(f"created {user.email} ({user.organization}): {' '.join(user.roles)}")


@users.command("list", help="List people, optionally of one organization.")
@click.option("--organization", default=None)
def users_list(organization: str | None) -> None:
    from consent_service.services import users as cases

    for user in cases.list_users(_services(), organization=organization):
        state = "disabled" if user.disabled_at else ("locked" if user.locked_until else "active")
        click.echo(f"{user.email}\t{user.organization}\t{' '.join(user.roles)}\t{state}")


def _change_person(
    email: str,
    change: Literal["set_password", "set_roles", "unlock", "disable", "link_provider"],
    done: str,
    **values: str | list[str],
) -> None:
    """Apply one of ``services.users``' changes to the person with ``email``, then say ``done``.

    A refusal (no such person, an unusable password) ends the command with its message and
    exit status 1 rather than a traceback. The domain is imported here, not at the top, so
    ``--help`` stays quick.
    """
    from consent_service.errors import ServiceError
    from consent_service.services import users as cases

    try:
        getattr(cases, change)(_services(), email=email, now=datetime.now(UTC), **values)
    except ServiceError as exc:
        raise _refused(exc) from exc
    click.echo(done)


@users.command("set-password", help="Set a new password (also unlocks; ends the person's sessions).")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def users_set_password(email: str, password: str) -> None:
    _change_person(email, "set_password", f"password of {email} changed", password=password)


@users.command("set-roles", help="Replace a person's roles (steward, intake, or scopes).")
@click.option("--email", required=True)
@click.option("--role", "roles", multiple=True, required=True, help="steward, intake, or a scope; repeatable")
def users_set_roles(email: str, roles: tuple[str, ...]) -> None:
    _change_person(email, "set_roles", f"roles of {email} changed", roles=list(roles))


@users.command("unlock", help="Lift a lockout after failed sign-ins.")
@click.option("--email", required=True)
def users_unlock(email: str) -> None:
    _change_person(email, "unlock", f"{email} unlocked")


@users.command("disable", help="Stop a person signing in (their sessions end at once).")
@click.option("--email", required=True)
def users_disable(email: str) -> None:
    _change_person(email, "disable", f"{email} disabled")


@users.command(
    "link-provider",
    help="Let an existing person sign in through the OpenID provider account ISSUER + SUBJECT "
    "(check first that both are the same person: accounts are never matched by email).",
)
@click.argument("email")
@click.option("--issuer", required=True, help="the provider's issuer (CONSENT_OIDC_ISSUER)")
@click.option("--subject", required=True, help="the person's 'sub' claim at that provider")
def users_link_provider(email: str, issuer: str, subject: str) -> None:
    _change_person(
        email, "link_provider", f"{email} linked to their account at {issuer}", issuer=issuer, subject=subject
    )


@main.group(help="The tamper-evident audit log.")
def audit() -> None:
    pass


@audit.command("verify", help="Exit 0 if the audit chain is intact; otherwise say where it breaks.")
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A signed checkpoint file exported earlier (may repeat).",
)
def audit_verify(checkpoints: tuple[str, ...]) -> None:
    from consent_service.errors import ValidationFailed
    from consent_service.services import audit as audit_log

    tokens = [Path(p).read_text().strip() for p in checkpoints]
    services = _services()
    try:
        with _progress(services, "verifying the chain and every bound row") as step:
            result = audit_log.verify(services, checkpoint_tokens=tokens, progress=step)
    except ValidationFailed as exc:
        click.echo(
            f"audit verify: a checkpoint file is not signed by this service's keys "
            f"({json.dumps(exc.details)})",
            err=True,
        )
        sys.exit(2)
    click.echo(json.dumps(audit_log.CHAIN_ONLY.dump(result)))
    if not result.ok:
        click.echo(f"audit chain BROKEN: {result.problem}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {result.entries} entries, head {result.head_seq}", err=True)


@audit.command(
    "checkpoint",
    help="Verify the chain and every bound row, then print a signed checkpoint "
    "(sequence, head hash, state) to keep elsewhere.",
)
def audit_checkpoint() -> None:
    from consent_service.errors import Conflict
    from consent_service.services import audit as audit_log

    services = _services()
    try:
        with _progress(services, "verifying before signing") as step:
            signed = audit_log.checkpoint(services, now=datetime.now(UTC), progress=step)
    except Conflict as exc:
        click.echo(f"audit checkpoint: {exc.message}", err=True)
        sys.exit(1)
    click.echo(signed.checkpoint)


@contextmanager
def _progress(services: Services, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr over the entries and rows a verification reads."""
    from consent_service.services import audit as audit_log

    total = audit_log.work(services)
    if not total:
        yield lambda _: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


@main.group(help="Signing keys.")
def keys() -> None:
    pass


@keys.command("rotate", help="Add a new signing key in the instance folder; old keys still verify.")
def keys_rotate() -> None:
    from consent_service.container import EXTENSION
    from consent_service.errors import ServiceError
    from consent_service.services import signing_keys as key_rotation

    app = _app()
    try:
        kid = key_rotation.rotate(
            app.extensions[EXTENSION], instance=Path(app.instance_path), now=datetime.now(UTC)
        )
    except ServiceError as exc:
        raise _refused(exc) from exc
    click.echo(kid)


@main.command(help="Load the rough-sleeper example world and print ready-to-paste curl commands.")
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True)
def demo(base_url: str) -> None:
    from consent_service.demo import load_demo

    click.echo(load_demo(_services(), base_url=base_url, now=datetime.now(UTC)))


@main.group(help="Change events (webhooks): the deliverer.")
def events() -> None:
    pass


@events.command("deliver", help="POST change events to webhooks (run beside the web server; docs/deploy.md).")
@click.option("--once", is_flag=True, help="Stop when no event is due now (tests, cron).")
def events_deliver(once: bool) -> None:
    import signal

    from consent_service.services.events import Deliverer, Round

    services = _services()
    stopping = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        # Finish the event in hand (its answer is recorded), then stop.
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def _report(result: Round) -> None:
        if result.claimed or result.expired_found or result.lapsed_found:
            click.echo(
                json.dumps(
                    {
                        "claimed": result.claimed,
                        "delivered": result.delivered,
                        "failed": result.failed,
                        "expired_found": result.expired_found,
                        "lapsed_found": result.lapsed_found,
                    }
                )
            )
        if stopping["now"]:
            raise SystemExit(0)

    Deliverer(services).run(once=once, on_round=_report)
