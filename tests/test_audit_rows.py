"""The audit chain binds every row a decision reads or that records one (issue 13, contract 7).

A populated database is tampered with by hand (direct SQL: change any column, add a row,
delete a row, swap two rows) and ``audit verify`` must fail and name the table and the row;
every edit is then undone and the database must verify again (the positive control, also
after revocations, retirements, a disabled client and account changes made the normal way).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import assert_ok, body_with
from conftest import World
from governance_helpers import (
    APPROVAL_RULE,
    COUNCIL_A,
    GOVERNMENT,
    MEMBER,
    MEMBER_CONSENT,
    NATION_A,
    NATION_B,
    OUTSIDER,
    PROVIDER,
    RESEARCHER,
    Governance,
)
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from security_helpers import AGREEMENT_DUTY, WEBHOOK_URL, access_request_body
from sqlalchemy import Integer, String, Table, and_, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from trust_helpers import cli_json, engine_of, run_cli

from consent_service.container import EXTENSION, Services
from consent_service.core import consent_files
from consent_service.services import audit as audit_log
from consent_service.services import audit_rows, organizations, users
from consent_service.storage import audit as audit_store
from consent_service.storage.audit_rows import BOUND
from consent_service.storage.models import AuditEntry, AuditHead
from consent_service.storage.types import UTCDateTime

PASSWORD = "correct horse battery staple"
TABLES = sorted(BOUND)


def services_of(app: Any) -> Services:
    return app.extensions[EXTENSION]  # type: ignore[no-any-return]


def populate(app: Any, client: Any, world: World) -> dict[str, Any]:
    """Every bound table with at least two rows, made only through the service."""
    gov = Governance(client, world)
    services = services_of(app)
    now = datetime.now(UTC)
    rule = gov.rule()
    gov.rule(NATION_B, APPROVAL_RULE)
    gov.retire(rule, reason="superseded")
    first = gov.approval()
    gov.approval(NATION_B, requester=GOVERNMENT)
    gov.revoke(first, reason="agreement ended")
    member = gov.consent()
    outsider = gov.consent(subject=OUTSIDER, communities=[NATION_A, NATION_B])
    # steward changes: one waiting, one confirmed by a second client (it adds a steward row)
    for organization in (RESEARCHER, GOVERNMENT):
        change = client.post(
            f"/v1/communities/{NATION_A}/steward-changes",
            headers=gov.steward(),
            json={"action": "add", "organization": organization},
        )
        assert change.status_code == 201, change.get_json()
    confirmed = client.post(
        f"/v1/communities/{NATION_A}/steward-changes/{change.get_json()['id']}/confirm",
        headers=world.headers(COUNCIL_A, "community:read", "rules:write"),
    )
    assert confirmed.status_code == 200, confirmed.get_json()
    # memberships: one confirmed by the community, one ended by the person
    pending = client.get(f"/v1/communities/{NATION_A}/memberships", headers=gov.steward()).get_json()[
        "pending"
    ]
    assert_ok(
        client.post(
            f"/v1/communities/{NATION_A}/memberships/confirm",
            headers=gov.steward(),
            json={"memberships": [pending[0]["id"]]},
        )
    )
    assert_ok(
        client.post(f"/v1/consents/{outsider['id']}/memberships/{NATION_B}/end", headers=gov.recorder())
    )
    # access requests: gla, refused under Nation A's approval rule, asks twice (withdrawing the first)
    asked = gov.rule(NATION_A, APPROVAL_RULE)
    refusal = gov.ask(requester=GOVERNMENT)
    assert asked["id"] in [r.get("rule_id") for r in refusal["reasons"]], refusal
    for withdraw in (True, False):
        filed = assert_ok(
            client.post(
                "/v1/access-requests",
                headers=world.headers(GOVERNMENT, "authorize"),
                json=access_request_body({"rule_id": asked["id"]}),
            ),
            201,
        )
        if withdraw:
            assert_ok(
                client.post(
                    f"/v1/access-requests/{filed['id']}/withdraw",
                    headers=world.headers(GOVERNMENT, "authorize"),
                )
            )
    # a batch authorize: its decision rows and community links, bound by the batch's one entry
    assert_ok(
        client.post(
            "/v1/authorize/batch",
            headers=world.headers(RESEARCHER, "authorize"),
            json={
                "subjects": [MEMBER, OUTSIDER, MEMBER],
                "purpose": "research",
                "data_categories": ["health"],
            },
        )
    )
    # webhooks: two, one of them deleted
    hooks = [
        assert_ok(
            client.post(
                "/v1/webhooks",
                headers=world.headers(org, "webhooks:write"),
                json={"url": WEBHOOK_URL, "kinds": ["consent.revoked"]},
            ),
            201,
        )
        for org in (GOVERNMENT, RESEARCHER)
    ]
    deleted = client.delete(
        f"/v1/webhooks/{hooks[1]['id']}", headers=world.headers(RESEARCHER, "webhooks:write")
    )
    assert deleted.status_code == 204, deleted.get_data(as_text=True)
    # agreements, each with a duty and its document; one renewed, one duty met
    for community, party in ((NATION_A, RESEARCHER), (NATION_B, GOVERNMENT)):
        agreement = assert_ok(
            client.post(
                f"/v1/communities/{community}/agreements",
                headers=gov.steward(community),
                json={
                    "title": "Agreement",
                    "parties": [party],
                    "legal_authority": "Council resolution",
                    "review_at": "2099-01-01T00:00:00+00:00",
                    "duties": [{**AGREEMENT_DUTY, "owed_by": party}],
                },
            ),
            201,
        )
        base = f"/v1/communities/{community}/agreements/{agreement['id']}"
        assert_ok(
            client.put(
                f"{base}/document",
                data=b"signed",
                headers={**gov.steward(community), "Content-Type": "text/plain"},
            )
        )
    assert_ok(
        client.post(
            f"{base}/renew", json={"review_at": "2099-06-01T00:00:00+00:00"}, headers=gov.steward(NATION_B)
        )
    )
    duty_id = agreement["duties"][0]["id"]
    assert_ok(client.post(f"{base}/duties/{duty_id}/met", json={}, headers=gov.steward(NATION_B)))
    amended = {k: v for k, v in body_with(MEMBER_CONSENT, purposes=["research"]).items() if k != "subject"}
    assert_ok(client.post(f"/v1/consents/{member['id']}/amend", json=amended, headers=gov.recorder()))
    assert_ok(
        client.post(f"/v1/consents/{outsider['id']}/revoke", json={"reason": "asked"}, headers=gov.recorder())
    )
    for subject in ({"system": "urn:outreach-org:client", "value": "C-1042"}, OUTSIDER):
        for purpose, category in (("research", "health"), ("service-planning", "housing")):
            gov.ask(purpose, category, subject=subject)
    # two consents from an imported file (consent_import_row)
    bundle = consent_files.fhir_bundle(
        consent_files.fhir_consent(
            {**MEMBER_CONSENT, "subject": {"system": "urn:outreach-org:client", "value": f"C-30{n}"}},
            issuer="urn:consent-service",
        )
        for n in range(2)
    )
    assert_ok(client.post("/v1/consents/import", json=bundle, headers=gov.recorder()), 201)
    for n in range(2):
        users.create_user(
            services,
            caller=None,
            email=f"worker{n}@example.org",
            name=f"Worker {n}",
            organization=PROVIDER,
            roles=["intake"],
            password=PASSWORD,
            language="en",
            now=now,
        )
    with pytest.raises(users.SignInRefused):
        users.sign_in(services, email="worker0@example.org", password="wrong password here", now=now)
    users.sign_in(services, email="worker1@example.org", password=PASSWORD, now=now)
    client_id, _ = world.credentials(PROVIDER, "consents:read")
    organizations.disable_client(services, caller=None, client_id=client_id, now=now)
    return {"member": member, "outsider": outsider, "governance": gov}


@pytest.fixture
def populated(app, client, world) -> dict[str, Any]:
    facts = populate(app, client, world)
    assert audit_log.verify(services_of(app)).ok
    return facts


# -- tampering by hand -------------------------------------------------------------------------------


def _key(table: Table, row: dict[str, Any]) -> list[Any]:
    return [row[c.name] for c in table.primary_key.columns]


def _where(table: Table, key: list[Any]) -> Any:
    return and_(*(c == v for c, v in zip(table.primary_key.columns, key, strict=True)))


def changed(value: Any, column: Any) -> Any:
    """A value of the same type that differs from ``value`` (and fits the column)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1000
    if isinstance(value, str):
        return value[:-1] + ("y" if value.endswith("x") else "x") if value else "x"
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    if isinstance(value, bytes):
        return value + b" (altered)"
    if isinstance(value, list):
        return [*value, "immigration-enforcement"]
    if isinstance(value, dict):
        return {**value, "tampered": True}
    if isinstance(column.type, UTCDateTime):
        return datetime.now(UTC)
    if isinstance(column.type, Integer):
        return 1
    if isinstance(column.type, String):
        return "x"
    return ["tampered"]


def _rows(conn: Any, table: Table) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()]


def tamper(app: Any, table: Table, data: Any) -> tuple[list[list[Any]], Any]:
    """Apply one random edit to ``table``; returns the keys it touched and how to undo it."""
    engine = engine_of(app)
    op = data.draw(st.sampled_from(["update", "insert", "delete", "swap"]), label="op")
    with engine.begin() as conn:
        rows = _rows(conn, table)
    assert len(rows) >= 2, f"populate() left {table.name} with fewer than two rows"
    index = data.draw(st.integers(0, len(rows) - 1), label="row")
    row = rows[index]
    key = _key(table, row)
    try:
        with engine.begin() as conn:
            if op == "update":
                column = data.draw(st.sampled_from(list(table.columns)), label="column")
                new = {**row, column.name: changed(row[column.name], column)}
                conn.execute(update(table).where(_where(table, key)).values(**new))
                new_key = _key(table, new)

                def undo(c: Any) -> None:
                    c.execute(update(table).where(_where(table, new_key)).values(**row))

                return [key, new_key], undo
            if op == "insert":
                pk = list(table.primary_key.columns)
                column = pk[data.draw(st.integers(0, len(pk) - 1), label="key column")]
                copy = {**row, column.name: changed(row[column.name], column)}
                conn.execute(insert(table).values(**copy))
                copy_key = _key(table, copy)
                return [copy_key], lambda c: c.execute(delete(table).where(_where(table, copy_key)))
            if op == "delete":
                conn.execute(delete(table).where(_where(table, key)))
                return [key], lambda c: c.execute(insert(table).values(**row))
            other = rows[data.draw(st.integers(0, len(rows) - 1).filter(lambda i: i != index), label="other")]
            keys = {c.name for c in table.primary_key.columns}
            mine = {n: v for n, v in row.items() if n not in keys}
            theirs = {n: v for n, v in other.items() if n not in keys}
            if not mine or mine == theirs:
                reject()  # nothing to swap: the two rows would stay as they are
            other_key = _key(table, other)
            conn.execute(update(table).where(_where(table, key)).values(**theirs))
            conn.execute(update(table).where(_where(table, other_key)).values(**mine))

            def unswap(c: Any) -> None:
                c.execute(update(table).where(_where(table, key)).values(**mine))
                c.execute(update(table).where(_where(table, other_key)).values(**theirs))

            return [key, other_key], unswap
    except (IntegrityError, DBAPIError):
        reject()  # the database's own constraints refused the edit: nothing was changed
    raise AssertionError("unreachable")


def _named(result: Any, table: str, keys: list[list[Any]]) -> bool:
    return any(p["table"] == table and p["row"] in keys for p in result.rows)


@pytest.mark.parametrize("table_name", TABLES)
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
@given(data=st.data())
def test_a_direct_edit_of_any_bound_table_is_found_and_named(app, populated, table_name, data):
    table = BOUND[table_name]
    services = services_of(app)
    keys, undo = tamper(app, table, data)
    try:
        result = audit_log.verify(services)
        assert result.ok is False
        assert result.table == table_name, result.problem
        assert _named(result, table_name, keys), (keys, result.rows)
        assert result.row in keys and result.problem
    finally:
        with engine_of(app).begin() as conn:
            undo(conn)
    assert audit_log.verify(services).ok, "undoing the edit restores a database that verifies"


# -- what the reader sees ------------------------------------------------------------------------------


def _edit_consent_terms(app: Any, consent_id: str) -> None:
    """The issue's example: immigration enforcement added to a consent version by hand."""
    versions = BOUND["consent_version"]
    with engine_of(app).begin() as conn:
        conn.execute(
            update(versions)
            .where(versions.c.consent_id == consent_id, versions.c.version == 1)
            .values(purposes=["research", "immigration-enforcement"], recipients=["home-office"])
        )


def test_the_cli_and_the_endpoint_name_the_table_and_the_row(app, app_config, client, world, populated):
    consent_id = populated["outsider"]["id"]
    _edit_consent_terms(app, consent_id)
    cli = run_cli(app_config, "audit", "verify")
    assert cli.exit_code == 1
    out = cli_json(cli)
    assert out["ok"] is False and out["table"] == "consent_version" and out["row"] == [consent_id, 1]
    assert "consent_version" in cli.stderr and consent_id in cli.stderr and "edited outside" in cli.stderr
    response = client.get("/v1/audit/verify", headers=world.headers("auditor", "audit:read"))
    body = assert_ok(response)
    assert body["ok"] is False and body["table"] == "consent_version" and body["row"] == [consent_id, 1]
    assert body["rows"][0]["seq"] is not None and body["entry"]["object_id"] == consent_id


def test_a_revoked_consent_put_back_to_its_active_version_is_found(app, populated):
    """Rolling a row back to an earlier state the chain did record is still a change."""
    consent_id = populated["outsider"]["id"]
    consents = BOUND["consent"]
    with engine_of(app).begin() as conn:
        conn.execute(
            update(consents)
            .where(consents.c.id == consent_id)
            .values(status="active", revoked_at=None, revoked_reason=None)
        )
    result = audit_log.verify(services_of(app))
    assert result.ok is False and result.table == "consent" and result.row == [consent_id]


def test_a_flipped_decision_and_a_deleted_membership_are_both_named(app, populated):
    decisions, memberships = BOUND["decision"], BOUND["membership"]
    with engine_of(app).begin() as conn:
        decision = conn.execute(select(decisions).where(decisions.c.outcome == "deny")).mappings().first()
        member = conn.execute(select(memberships)).mappings().first()
        conn.execute(update(decisions).where(decisions.c.id == decision["id"]).values(outcome="permit"))
        conn.execute(delete(memberships).where(_where(memberships, _key(memberships, dict(member)))))
    result = audit_log.verify(services_of(app))
    assert result.ok is False
    assert _named(result, "decision", [[decision["id"]]])
    assert _named(result, "membership", [[member["subject_key"], member["community_id"]]])
    assert any("deleted outside" in p["problem"] for p in result.rows)


def test_normal_use_keeps_the_database_verifying(app, app_config, client, world, populated):
    """Revoke, amend, retire, revoke an approval, disable a client, lock and unlock a person:
    each row is then bound to the last entry that changed it."""
    gov: Governance = populated["governance"]
    services = services_of(app)
    now = datetime.now(UTC)
    member = populated["member"]["id"]
    assert_ok(client.post(f"/v1/consents/{member}/revoke", json={"reason": "moved"}, headers=gov.recorder()))
    gov.retire(gov.rule(purposes=["service-planning"]))
    gov.revoke(gov.approval(requester=PROVIDER))
    for _ in range(int(services.settings["WEB_LOCKOUT_THRESHOLD"])):
        with pytest.raises(users.SignInRefused):
            users.sign_in(services, email="worker1@example.org", password="not the password", now=now)
    users.unlock(services, email="worker1@example.org", now=now)
    users.set_language(services, user_id=users.list_users(services)[0].id, language="fr", now=now)
    users.sign_out(services, user_id=users.list_users(services)[0].id, now=now)
    client_id, _ = world.credentials(GOVERNMENT, "authorize")
    organizations.disable_client(services, caller=None, client_id=client_id, now=now)
    gov.ask("research", "health", subject=OUTSIDER)
    result = audit_log.verify(services)
    assert result.ok, result.problem
    cli = run_cli(app_config, "audit", "verify")
    assert cli.exit_code == 0 and cli_json(cli)["ok"] is True


# -- checkpoints cover the state ----------------------------------------------------------------------


def test_a_checkpoint_signs_the_state_and_is_refused_over_a_tampered_one(
    app, app_config, client, world, populated
):
    auditor = world.headers("auditor", "audit:read")
    token = assert_ok(client.get("/v1/audit/checkpoint", headers=auditor))["checkpoint"]
    _, claims = services_of(app).keys.verify(token, typ="audit-checkpoint+jwt")
    assert len(claims["state"]) == 64
    assert audit_log.verify(services_of(app), checkpoint_tokens=[token]).ok
    _edit_consent_terms(app, populated["member"]["id"])
    response = client.get("/v1/audit/checkpoint", headers=auditor)
    assert response.status_code == 409 and "consent_version" in response.get_json()["error"]["message"]
    cli = run_cli(app_config, "audit", "checkpoint")
    assert cli.exit_code == 1 and cli.stdout.strip() == "" and "consent_version" in cli.stderr


def test_a_checkpoint_still_verifies_after_later_changes(app, client, populated):
    """The state a checkpoint signed is the chain's state at its entry: later changes (a
    revocation, new decisions) do not disturb it, and verify recomputes and compares it."""
    services = services_of(app)
    token = audit_log.checkpoint(services, now=datetime.now(UTC)).checkpoint
    gov: Governance = populated["governance"]
    assert_ok(
        client.post(
            f"/v1/consents/{populated['member']['id']}/revoke",
            json={"reason": "moved"},
            headers=gov.recorder(),
        )
    )
    gov.ask("research", "health", subject=OUTSIDER)
    assert audit_log.verify(services, checkpoint_tokens=[token]).ok


# -- databases older than the binding -------------------------------------------------------------------


def test_rows_of_an_older_database_are_bound_once_by_db_upgrade(app, app_config, client, world, monkeypatch):
    services = services_of(app)

    def unbound_append(
        self: Services,
        session: Any,
        *,
        at: datetime,
        tag: str,
        caller: Any,
        object_id: str | None,
        payload: dict[str, Any],
    ) -> int:  # the release before
        audit_rows.pending(self.rows_key, session)
        return audit_store.append(
            session,
            hasher=self._hash,
            at=at,
            tag=tag,
            actor_org=caller.organization if caller else None,
            actor_client=caller.client_id if caller else None,
            object_id=object_id,
            payload=payload,
        )

    monkeypatch.setattr(Services, "append_audit", unbound_append)
    gov = Governance(client, world)
    gov.consent()
    monkeypatch.undo()
    before = audit_log.verify(services)
    assert before.ok is False and "db upgrade" in before.problem

    upgrade = run_cli(app_config, "db", "upgrade")
    assert upgrade.exit_code == 0 and "bound the existing rows" in upgrade.stderr
    assert audit_log.verify(services).ok
    assert run_cli(app_config, "db", "upgrade").exit_code == 0
    assert audit_log.bind_existing_rows(services, now=datetime.now(UTC)) == 0  # once only

    gov.ask("research", "health")  # new entries bind their rows as usual
    assert audit_log.verify(services).ok
    consents = BOUND["consent"]
    with engine_of(app).begin() as conn:
        consent_id = conn.execute(select(consents.c.id)).scalar_one()
        conn.execute(update(consents).where(consents.c.id == consent_id).values(recorded_by=GOVERNMENT))
    result = audit_log.verify(services)
    assert result.ok is False and result.table == "consent" and result.row == [consent_id]


def test_verify_streams_in_bounded_pages_and_reports_progress(app, populated, monkeypatch):
    """Tables are read in keyset pages; the progress callback counts every entry and row."""
    from consent_service.storage import audit_rows as row_store

    pages: list[int] = []
    original = row_store.rows

    def small_pages(session: Any, table: Table, *, batch: int = 1000) -> Any:
        for row in original(session, table, batch=2):
            pages.append(1)
            yield row

    monkeypatch.setattr(row_store, "rows", small_pages)
    steps: list[int] = []
    services = services_of(app)
    assert audit_log.verify(services, progress=steps.append).ok
    assert sum(steps) == audit_log.work(services)
    with engine_of(app).begin() as conn:
        entries = conn.execute(select(AuditHead.seq)).scalar_one()
        assert conn.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).first()[0] == entries
    assert len(pages) == sum(steps) - entries


def test_the_namings_of_an_entry_cannot_be_edited_without_breaking_the_chain(app, populated):
    """An entry's namings are inside its keyed hash: changing them breaks the chain itself."""
    with engine_of(app).begin() as conn:
        entries = AuditEntry.__table__
        entry = conn.execute(select(entries).where(entries.c.tag == "consent:revoked")).mappings().first()
        payload = {**entry["payload"], "rows": []}
        conn.execute(update(entries).where(entries.c.seq == entry["seq"]).values(payload=payload))
    result = audit_log.verify(services_of(app))
    assert result.ok is False and result.seq == entry["seq"] and "modified" in result.problem


def test_simultaneous_changes_of_one_row_each_record_what_the_other_left(app, populated):
    """Two wrong passwords at once both count; each entry's "before" is the state the other
    committed (the row is locked from the read of its "before" to the commit), so the chain of
    the row's states has no gap and the database still verifies."""
    services = services_of(app)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def wrong_password() -> None:
        barrier.wait()
        try:
            users.sign_in(
                services, email="worker1@example.org", password="not the password", now=datetime.now(UTC)
            )
        except users.SignInRefused:
            pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrong_password) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = audit_log.verify(services)
    assert result.ok, result.problem


def test_a_hand_edit_the_service_later_overwrote_is_still_named(app, populated):
    """A row edited by hand and then changed by the service is not laundered by that change:
    the entry recorded the row as it found it, which the chain never had."""
    services = services_of(app)
    accounts = BOUND["user_account"]
    with engine_of(app).begin() as conn:
        user_id = conn.execute(
            select(accounts.c.id).where(accounts.c.email == "worker1@example.org")
        ).scalar_one()
        conn.execute(update(accounts).where(accounts.c.id == user_id).values(roles="admin"))
    with pytest.raises(users.SignInRefused):  # the failure counter moves: the service changes the row
        users.sign_in(
            services, email="worker1@example.org", password="not the password", now=datetime.now(UTC)
        )
    result = audit_log.verify(services)
    assert result.ok is False and result.table == "user_account" and result.row == [user_id]
    assert "changed outside the service before entry" in result.problem


# -- the decision path's digests, written column by column with shared values memoised ----------

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _decision_values(size: int) -> st.SearchStrategy[dict[str, Any]]:
    """Some of a decision row's columns, with any JSON-ish or datetime values (NULL included)."""
    return st.dictionaries(
        st.sampled_from([c.name for c in BOUND["decision"].columns]),
        _JSONISH | st.datetimes(timezones=st.just(UTC)),
        max_size=size,
    )


@settings(max_examples=200, deadline=None, database=None)
@given(values=_decision_values(12), other=st.text(max_size=12))
def test_a_digest_with_shared_values_memoised_is_the_canonical_digest(
    values: dict[str, Any], other: str
) -> None:
    """``digest(..., memo)`` hashes exactly ``canonical([table, {column: value}])``, as verification
    does row by row; a second row sharing the first one's lists and dicts reuses their text."""

    table = BOUND["decision"]
    memo: dict[int, str] = {}
    second = {**values, "id": other}
    for row in (values, second):
        expected = _canonical_digest(table, row)
        assert audit_rows.digest(b"k", table, row, memo) == expected
        assert audit_rows.digest(b"k", table, row) == expected


def _canonical_digest(table: Table, row: dict[str, Any]) -> str:
    """The digest as docs/audit.md defines it: every column, but a column added after rows were
    bound (``READ_WHEN_SET``: ``decision.batch_id``) only when it is set."""
    from consent_service.core.audit_chain import canonical
    from consent_service.storage.audit_rows import READ_WHEN_SET

    late = READ_WHEN_SET.get(table.name, frozenset())
    form = {
        column.name: audit_rows._plain(row.get(column.name))
        for column in table.columns
        if row.get(column.name) is not None or column.name not in late
    }
    return hmac.new(b"k", canonical([table.name, form]), hashlib.sha256).hexdigest()[:32]


def test_a_decision_recorded_before_batch_ids_keeps_its_digest() -> None:
    """``decision.batch_id`` (migration 0015) is read only when set: a row without it hashes as
    it did before the column existed."""
    from consent_service.core.audit_chain import canonical

    table = BOUND["decision"]
    row = {c.name: f"v-{c.name}" for c in table.columns if c.name != "batch_id"}
    before = {name: row[name] for name in sorted(row)}
    expected = hmac.new(b"k", canonical([table.name, before]), hashlib.sha256).hexdigest()[:32]
    assert audit_rows.digest(b"k", table, {**row, "batch_id": None}) == expected
    assert audit_rows.digest(b"k", table, {**row, "batch_id": None}, {}) == expected
    assert audit_rows.digest(b"k", table, {**row, "batch_id": "b"}) != expected


@settings(max_examples=200, deadline=None, database=None)
@given(shared=_decision_values(8), rows=st.lists(_decision_values(8), min_size=1, max_size=4))
def test_the_digests_of_a_batch_are_each_rows_canonical_digest(
    shared: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    """``digests`` (a batch's rows, the columns they share written once) gives each row's
    ``digest``, whichever columns are shared and whatever they hold (NULL included)."""
    table = BOUND["decision"]
    batch = [{**row, **shared} for row in rows]
    memo: dict[int, str] = {}
    found = audit_rows.digests(b"k", table, batch, memo, same=frozenset(shared))
    assert found == [_canonical_digest(table, row) for row in batch]


def test_the_digests_of_a_batch_refuse_a_shared_column_that_differs() -> None:
    table = BOUND["decision"]
    rows = [{"id": "a", "purpose": "research"}, {"id": "b", "purpose": "service-planning"}]
    with pytest.raises(ValueError, match="purpose"):
        audit_rows.digests(b"k", table, rows, {}, same=frozenset({"purpose"}))


@settings(max_examples=200, deadline=None, database=None)
@given(
    table_name=st.sampled_from(["consent", "consent_version", "consent_event", "membership", "decision"]),
    data=st.data(),
)
def test_digests_of_rows_sharing_columns_are_the_canonical_digests(table_name: str, data: Any) -> None:
    """A bulk import's ``digests``: the shared columns written once into a template, the others
    row by row; every row's digest is what ``digest`` gives it alone."""
    table = BOUND[table_name]
    names = [c.name for c in table.columns]
    values = _JSONISH | st.datetimes(timezones=st.just(UTC)) | st.just("100%")
    same = data.draw(st.dictionaries(st.sampled_from(names), values, max_size=len(names)))
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries({n: values for n in names if n not in same}).map(lambda r: {**r, **same}),
            min_size=1,
            max_size=3,
        )
    )
    found = audit_rows.digests(b"k", table, rows, {}, same=frozenset(same))
    assert found == [audit_rows.digest(b"k", table, row) for row in rows]
