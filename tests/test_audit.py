"""The tamper-evident audit log: every change is chained, and every kind of tampering is caught,
naming the entry, by both ``consent-service audit verify`` and ``/v1/audit/verify``."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import World
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from trust_helpers import cli_json, consent_body, engine_of, run_cli

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.core.audit_chain import canonical_text, link_hash, link_hash_serialized
from consent_service.storage.audit_rows import BOUND
from consent_service.storage.models import AuditEntry, AuditHead

ENTRIES = AuditEntry.__table__
HEAD = AuditHead.__table__


SYSTEM = {"system": "urn:outreach-org:client"}


def verify_endpoint(client, world: World, checkpoints: list[str] | None = None) -> dict[str, Any]:
    headers = world.headers("auditor", "audit:read")
    if checkpoints is None:
        response = client.get("/v1/audit/verify", headers=headers)
    else:
        response = client.post("/v1/audit/verify", json={"checkpoints": checkpoints}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def busy_chain(client, world: World) -> int:
    """Orgs, clients, consents, an amendment, a revocation and decisions; returns the head seq."""
    world.org("gla", "government")
    world.headers("auditor", "audit:read")
    writer = world.headers("outreach-org", "consents:write")
    asker = world.headers("gla", "authorize")
    ids = []
    for n in range(3):
        response = client.post(
            "/v1/consents", json=consent_body(subject={**SYSTEM, "value": f"C-{n}"}), headers=writer
        )
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    body = {k: v for k, v in consent_body().items() if k != "subject"}
    assert client.post(f"/v1/consents/{ids[0]}/amend", json=body, headers=writer).status_code == 200
    assert (
        client.post(f"/v1/consents/{ids[1]}/revoke", json={"reason": "asked"}, headers=writer).status_code
        == 200
    )
    for n in range(3):
        response = client.post(
            "/v1/authorize",
            json={
                "subject": {"system": "urn:outreach-org:client", "value": f"C-{n}"},
                "purpose": "service-planning",
                "data_categories": ["housing"],
            },
            headers=asker,
        )
        assert response.status_code == 200
    result = verify_endpoint(client, world)
    assert result["ok"] is True, result
    assert result["entries"] == result["head_seq"] >= 14
    return int(result["head_seq"])


def _row(conn: Connection, seq: int) -> dict[str, Any]:
    return dict(conn.execute(select(ENTRIES).where(ENTRIES.c.seq == seq)).mappings().one())


def _fake_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Each tampering gets (connection, head seq) and returns the seq verification must name.


def modify_payload(conn: Connection, n: int) -> int:
    k = n - 5
    payload = {**_row(conn, k)["payload"], "outcome": "permit", "purpose": "law-enforcement"}
    conn.execute(update(ENTRIES).where(ENTRIES.c.seq == k).values(payload=payload))
    return k


def modify_actor(conn: Connection, n: int) -> int:
    k = 3
    conn.execute(update(ENTRIES).where(ENTRIES.c.seq == k).values(actor_org="someone-else"))
    return k


def delete_entry(conn: Connection, n: int) -> int:
    k = n - 4
    conn.execute(delete(ENTRIES).where(ENTRIES.c.seq == k))
    return k


def delete_first_entry(conn: Connection, n: int) -> int:
    conn.execute(delete(ENTRIES).where(ENTRIES.c.seq == 1))
    return 1


def delete_and_renumber(conn: Connection, n: int) -> int:
    k = n - 4
    conn.execute(delete(ENTRIES).where(ENTRIES.c.seq == k))
    for seq in range(k + 1, n + 1):
        conn.execute(update(ENTRIES).where(ENTRIES.c.seq == seq).values(seq=seq - 1))
    conn.execute(update(HEAD).values(seq=n - 1))
    return k


def insert_forged_in_middle(conn: Connection, n: int) -> int:
    k = n - 3
    for seq in range(n, k - 1, -1):
        conn.execute(update(ENTRIES).where(ENTRIES.c.seq == seq).values(seq=seq + 1))
    before = _row(conn, k - 1)
    conn.execute(
        insert(ENTRIES).values(
            seq=k,
            at=before["at"],
            tag="consent:revoked",
            actor_org="outreach-org",
            actor_client="x",
            object_id="forged",
            payload={"reason": "forged"},
            prev_hash=before["hash"],
            hash=_fake_hash("forged"),
        )
    )
    conn.execute(update(HEAD).values(seq=n + 1))
    return k


def append_forged(conn: Connection, n: int) -> int:
    last = _row(conn, n)
    forged = _fake_hash("appended")
    conn.execute(
        insert(ENTRIES).values(
            seq=n + 1,
            at=last["at"],
            tag="decision:permit",
            actor_org="gla",
            actor_client="x",
            object_id="forged",
            payload={"outcome": "permit"},
            prev_hash=last["hash"],
            hash=forged,
        )
    )
    conn.execute(update(HEAD).values(seq=n + 1, hash=forged))
    return n + 1


def swap_two(conn: Connection, n: int) -> int:
    k = n - 6
    conn.execute(update(ENTRIES).where(ENTRIES.c.seq == k).values(seq=-1))
    conn.execute(update(ENTRIES).where(ENTRIES.c.seq == k + 1).values(seq=k))
    conn.execute(update(ENTRIES).where(ENTRIES.c.seq == -1).values(seq=k + 1))
    return k


def rehash_with_wrong_key(conn: Connection, n: int) -> int:
    """Change an entry and recompute every later link, as someone with only database access could."""
    k = n - 5
    prev = _row(conn, k - 1)["hash"]
    for seq in range(k, n + 1):
        row = _row(conn, seq)
        if seq == k:
            row["payload"] = {**row["payload"], "outcome": "deny"}
        digest = link_hash(
            b"guessed-key",
            prev_hash=prev,
            seq=seq,
            at=row["at"],
            tag=row["tag"],
            actor_org=row["actor_org"],
            actor_client=row["actor_client"],
            object_id=row["object_id"],
            payload=row["payload"],
        )
        conn.execute(
            update(ENTRIES)
            .where(ENTRIES.c.seq == seq)
            .values(payload=row["payload"], prev_hash=prev, hash=digest)
        )
        prev = digest
    conn.execute(update(HEAD).values(seq=n, hash=prev))
    return k


def cut_tail(conn: Connection, n: int) -> int:
    conn.execute(delete(ENTRIES).where(ENTRIES.c.seq > n - 3))
    return n - 2  # the head row still records n: the first missing entry is named


TAMPERINGS: list[Callable[[Connection, int], int]] = [
    modify_payload,
    modify_actor,
    delete_entry,
    delete_first_entry,
    delete_and_renumber,
    insert_forged_in_middle,
    append_forged,
    swap_two,
    rehash_with_wrong_key,
    cut_tail,
]


class TestTamperingIsCaught:
    @pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__)
    def test_by_endpoint_and_cli(self, app, app_config, client, world, busy_chain, tamper):
        with engine_of(app).begin() as conn:
            broken_at = tamper(conn, busy_chain)

        result = verify_endpoint(client, world)
        assert result["ok"] is False, result
        assert result["seq"] == broken_at
        named = f"head records entry {busy_chain}" if tamper is cut_tail else f"entry {broken_at}"
        assert named in result["problem"]

        cli = run_cli(app_config, "audit", "verify")
        assert cli.exit_code != 0
        assert cli_json(cli)["seq"] == broken_at
        assert "BROKEN" in cli.stderr and named in cli.stderr

    def test_the_broken_entry_is_described(self, app, client, world, busy_chain):
        with engine_of(app).begin() as conn:
            k = modify_payload(conn, busy_chain)
            tag = _row(conn, k)["tag"]
        result = verify_endpoint(client, world)
        assert result["entry"]["seq"] == k and result["entry"]["tag"] == tag

    def test_an_intact_chain_passes_both(self, app_config, client, world, busy_chain):
        assert verify_endpoint(client, world)["ok"] is True
        cli = run_cli(app_config, "audit", "verify")
        assert cli.exit_code == 0, cli.stderr
        assert cli_json(cli)["head_seq"] == busy_chain and "intact" in cli.stderr


class TestCuttingTheTailWithASignedCheckpoint:
    """Cutting the tail, moving the head row back and deleting the rows the cut entries added
    leaves a shorter chain that is intact in itself; only a checkpoint exported earlier shows
    what is missing. Cutting the tail alone leaves rows no entry records, which verify names."""

    def _cut_and_fix_head(self, app, n: int, *, rows_too: bool = True) -> None:
        with engine_of(app).begin() as conn:
            if rows_too:
                for entry in conn.execute(select(ENTRIES).where(ENTRIES.c.seq > n - 3)).mappings():
                    for table_name, key, _new, old in entry["payload"]["rows"]:
                        assert old is None  # the last entries of busy_chain only add rows
                        table = BOUND[table_name]
                        conn.execute(
                            delete(table).where(
                                *(c == v for c, v in zip(table.primary_key.columns, key, strict=True))
                            )
                        )
            conn.execute(delete(ENTRIES).where(ENTRIES.c.seq > n - 3))
            conn.execute(update(HEAD).values(seq=n - 3, hash=_row(conn, n - 3)["hash"]))

    def test_cutting_the_tail_but_not_its_rows_is_caught_without_a_checkpoint(
        self, app, client, world, busy_chain
    ):
        self._cut_and_fix_head(app, busy_chain, rows_too=False)
        result = verify_endpoint(client, world)
        assert result["ok"] is False and result["table"] in ("decision", "decision_community")
        assert "inserted outside the service" in result["problem"]

    def test_endpoint(self, app, client, world, busy_chain):
        response = client.get("/v1/audit/checkpoint", headers=world.headers("auditor", "audit:read"))
        assert response.status_code == 200
        checkpoint = response.get_json()
        assert checkpoint["seq"] == busy_chain and len(checkpoint["hash"]) == 64
        assert verify_endpoint(client, world, [checkpoint["checkpoint"]])["ok"] is True

        self._cut_and_fix_head(app, busy_chain)

        assert verify_endpoint(client, world)["ok"] is True  # undetectable without the checkpoint
        result = verify_endpoint(client, world, [checkpoint["checkpoint"]])
        assert result["ok"] is False and result["seq"] == busy_chain
        assert "cut off" in result["problem"]

    def test_cli(self, app, app_config, client, world, busy_chain, tmp_path):
        token = client.get("/v1/audit/checkpoint", headers=world.headers("auditor", "audit:read")).get_json()
        saved = tmp_path / "checkpoint.jws"
        saved.write_text(token["checkpoint"])
        from_cli = run_cli(app_config, "audit", "checkpoint")
        assert from_cli.exit_code == 0
        (tmp_path / "cli-checkpoint.jws").write_text(from_cli.stdout)

        self._cut_and_fix_head(app, busy_chain)

        assert run_cli(app_config, "audit", "verify").exit_code == 0
        for path in (saved, tmp_path / "cli-checkpoint.jws"):
            cli = run_cli(app_config, "audit", "verify", "--checkpoint", str(path))
            assert cli.exit_code != 0
            assert cli_json(cli)["seq"] == busy_chain and "cut off" in cli.stderr

    def test_a_rewritten_entry_differs_from_the_checkpoint(self, app, client, world, busy_chain):
        checkpoint = client.get(
            "/v1/audit/checkpoint", headers=world.headers("auditor", "audit:read")
        ).get_json()
        with engine_of(app).begin() as conn:
            conn.execute(update(ENTRIES).where(ENTRIES.c.seq == busy_chain).values(hash=_fake_hash("x")))
            conn.execute(update(HEAD).values(hash=_fake_hash("x")))
        result = verify_endpoint(client, world, [checkpoint["checkpoint"]])
        assert result["ok"] is False and result["seq"] == busy_chain

    def test_a_checkpoint_not_signed_by_the_service_is_refused(self, client, world, busy_chain):
        token = client.get("/v1/audit/checkpoint", headers=world.headers("auditor", "audit:read")).get_json()
        head, claims, signature = token["checkpoint"].split(".")
        response = client.post(
            "/v1/audit/verify",
            json={"checkpoints": [f"{head}.{claims}.{signature[::-1]}"]},
            headers=world.headers("auditor", "audit:read"),
        )
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "validation_error"
        assert "checkpoints" in response.get_json()["error"]["details"]

    def test_the_cli_refuses_a_forged_checkpoint_file_with_a_clear_message(
        self, app_config, client, world, busy_chain, tmp_path
    ):
        token = client.get("/v1/audit/checkpoint", headers=world.headers("auditor", "audit:read")).get_json()
        head, claims, signature = token["checkpoint"].split(".")
        forged = tmp_path / "forged.jws"
        forged.write_text(f"{head}.{claims}.{signature[::-1]}")
        result = run_cli(app_config, "audit", "verify", "--checkpoint", str(forged))
        assert result.exit_code == 2
        assert "not signed by this service" in result.stderr
        assert "Traceback" not in result.output

    def test_an_access_token_is_not_a_checkpoint(self, client, world, busy_chain):
        token = world.token("auditor", "audit:read")
        response = client.post(
            "/v1/audit/verify", json={"checkpoints": [token]}, headers=world.headers("auditor", "audit:read")
        )
        assert response.status_code == 400


class TestAccess:
    @pytest.mark.parametrize("path", ["/v1/audit/verify", "/v1/audit/checkpoint", "/v1/audit/entries"])
    def test_needs_audit_read(self, client, world, path):
        assert client.get(path).status_code == 401
        response = client.get(path, headers=world.headers("outreach-org", "consents:read", "authorize"))
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"

    def test_post_verify_validates(self, client, world):
        response = client.post(
            "/v1/audit/verify", json={"checkpoints": "nope"}, headers=world.headers("auditor", "audit:read")
        )
        assert response.status_code == 400
        assert "checkpoints" in response.get_json()["error"]["details"]


class TestExport:
    def test_pages_cover_the_chain_in_order(self, client, world, busy_chain):
        headers = world.headers("auditor", "audit:read")
        seen, after = [], 0
        while True:
            response = client.get(f"/v1/audit/entries?after={after}&limit=4", headers=headers)
            assert response.status_code == 200, response.get_json()
            body = response.get_json()
            assert body["head"]["seq"] == busy_chain
            seen.extend(body["entries"])
            if body["next_after"] is None:
                break
            after = body["next_after"]
        assert [e["seq"] for e in seen] == list(range(1, busy_chain + 1))
        for previous, entry in itertools.pairwise(seen):
            assert entry["prev_hash"] == previous["hash"]
        assert seen[-1]["hash"] == body["head"]["hash"]

    @pytest.mark.parametrize("query", ["limit=0", "limit=5000", "after=-1", "after=x"])
    def test_bad_query_is_a_contract_400(self, client, world, query):
        response = client.get(f"/v1/audit/entries?{query}", headers=world.headers("auditor", "audit:read"))
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "validation_error"


class TestEveryChangeIsAudited:
    def test_admin_consent_and_decision_events(self, client, world):
        admin = world.admin()
        assert (
            client.post(
                "/v1/organizations", json={"id": "gla", "name": "GLA", "type": "government"}, headers=admin
            ).status_code
            == 201
        )
        created = client.post(
            "/v1/clients", json={"organization": "gla", "name": "cs", "scopes": ["authorize"]}, headers=admin
        ).get_json()
        assert client.post(f"/v1/clients/{created['client_id']}/disable", headers=admin).status_code == 200
        world.org("nation-a-council", "community-governance")
        assert (
            client.post(
                "/v1/communities",
                json={"id": "nation-a", "name": "Nation A", "stewards": ["nation-a-council"]},
                headers=admin,
            ).status_code
            == 201
        )
        writer = world.headers("outreach-org", "consents:write")
        consent = client.post("/v1/consents", json=consent_body(), headers=writer).get_json()
        body = {k: v for k, v in consent_body().items() if k != "subject"}
        assert (
            client.post(f"/v1/consents/{consent['id']}/amend", json=body, headers=writer).status_code == 200
        )
        asker = world.headers("gla", "authorize")
        permit = client.post(
            "/v1/authorize",
            json={
                "subject": consent_body()["subject"],
                "purpose": "referral",
                "data_categories": ["housing"],
            },
            headers=asker,
        ).get_json()
        assert client.post(f"/v1/consents/{consent['id']}/revoke", json={}, headers=writer).status_code == 200
        deny = client.post(
            "/v1/authorize",
            json={
                "subject": consent_body()["subject"],
                "purpose": "referral",
                "data_categories": ["housing"],
            },
            headers=asker,
        ).get_json()
        assert (permit["decision"], deny["decision"]) == ("permit", "deny")

        entries = client.get("/v1/audit/entries?limit=1000", headers=world.headers("auditor", "audit:read"))
        logged = {(e["tag"], e["object_id"]) for e in entries.get_json()["entries"]}
        for expected in [
            ("organization:created", "gla"),
            ("client:created", created["client_id"]),
            ("client:disabled", created["client_id"]),
            ("community:created", "nation-a"),
            ("consent:recorded", consent["id"]),
            ("consent:amended", consent["id"]),
            ("consent:revoked", consent["id"]),
            ("decision:permit", permit["decision_id"]),
            ("decision:deny", deny["decision_id"]),
        ]:
            assert expected in logged
        by_tag = {e["tag"]: e for e in entries.get_json()["entries"]}
        assert by_tag["decision:permit"]["payload"]["consent_version"] == 2
        assert by_tag["consent:recorded"]["payload"]["subject"] == consent["subject_pseudonym"]
        assert "C-1042" not in str(entries.get_json())  # only pseudonyms reach the log


class TestConcurrentAppends:
    def test_two_instances_and_many_threads_never_fork_or_leave_gaps(self, app, app_config, world):
        other = create_app(app_config)  # a second instance on the same database
        try:
            writer = world.headers("outreach-org", "consents:write")
            asker = world.headers("gla", "authorize")
            head_before = verify_endpoint(world.client, world)["head_seq"]
            threads, per_thread, failures = 8, 6, []

            def work(index: int) -> None:
                target = app if index % 2 else other
                client = target.test_client()
                for n in range(per_thread):
                    subject = {"system": "urn:outreach-org:client", "value": f"T{index}-{n}"}
                    for response in (
                        client.post("/v1/consents", json=consent_body(subject=subject), headers=writer),
                        client.post(
                            "/v1/authorize",
                            json={"subject": subject, "purpose": "referral", "data_categories": ["housing"]},
                            headers=asker,
                        ),
                    ):
                        if response.status_code not in (200, 201):
                            failures.append(response.get_json())

            pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            assert failures == []

            result = verify_endpoint(world.client, world)
            assert result["ok"] is True, result
            assert result["head_seq"] == result["entries"] == head_before + 2 * threads * per_thread
            with engine_of(app).connect() as conn:
                seqs = list(conn.execute(select(ENTRIES.c.seq).order_by(ENTRIES.c.seq)).scalars())
                prevs = list(conn.execute(select(ENTRIES.c.prev_hash)).scalars())
            assert seqs == list(range(1, result["head_seq"] + 1))
            assert len(set(prevs)) == len(prevs)  # no two entries claim the same predecessor: no fork
        finally:
            other.extensions[EXTENSION].sessions.kw["bind"].dispose()


def test_checkpoint_time_is_now(client, world):
    body = client.get("/v1/audit/checkpoint", headers=world.headers("auditor", "audit:read")).get_json()
    at = datetime.fromisoformat(body["at"])
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60 and body["kid"]


class TestCommunityChangesAreAudited:
    def test_rules_and_approvals(self, client, world):
        world.org("nation-a-council", "community-governance")
        world.org("univ", "research")
        created = client.post(
            "/v1/communities",
            json={"id": "nation-a", "name": "Nation A", "stewards": ["nation-a-council"]},
            headers=world.admin(),
        )
        assert created.status_code == 201
        steward = world.headers("nation-a-council", "rules:write")
        rule = client.post(
            "/v1/communities/nation-a/rules",
            headers=steward,
            json={
                "effect": "require_approval",
                "purposes": ["research"],
                "data_categories": ["health"],
                "requesters": ["*"],
                "reason": "ask first",
            },
        )
        assert rule.status_code == 201, rule.get_json()
        approval = client.post(
            "/v1/communities/nation-a/approvals",
            headers=steward,
            json={"requester": "univ", "purposes": ["research"], "data_categories": ["health"]},
        )
        assert approval.status_code == 201, approval.get_json()
        rule_id, approval_id = rule.get_json()["id"], approval.get_json()["id"]
        assert (
            client.post(
                f"/v1/communities/nation-a/approvals/{approval_id}/revoke",
                json={"reason": "ended"},
                headers=steward,
            ).status_code
            == 200
        )
        assert (
            client.delete(
                f"/v1/communities/nation-a/rules/{rule_id}", json={"reason": "lifted"}, headers=steward
            ).status_code
            == 200
        )

        entries = client.get("/v1/audit/entries?limit=1000", headers=world.headers("auditor", "audit:read"))
        logged = {(e["tag"], e["object_id"]) for e in entries.get_json()["entries"]}
        assert {
            ("rule:created", rule_id),
            ("rule:retired", rule_id),
            ("approval:granted", approval_id),
            ("approval:revoked", approval_id),
        } <= logged
        assert verify_endpoint(client, world)["ok"] is True


_TEXT = st.text(max_size=8) | st.sampled_from(["é", '"', "\\", "\u2028", "%s"])


@settings(max_examples=200, deadline=None, database=None)
@given(
    seq=st.integers(1, 10**9),
    at=st.datetimes(timezones=st.just(UTC)),
    tag=_TEXT,
    actor_org=st.none() | _TEXT,
    actor_client=st.none() | _TEXT,
    object_id=st.none() | _TEXT,
    payload=st.dictionaries(
        _TEXT, st.none() | st.integers() | _TEXT | st.lists(_TEXT, max_size=3), max_size=4
    ),
)
def test_a_link_over_a_serialized_payload_is_the_same_link(
    seq: int,
    at: datetime,
    tag: str,
    actor_org: str | None,
    actor_client: str | None,
    object_id: str | None,
    payload: dict[str, Any],
) -> None:
    """A bulk import serializes each payload once (``canonical_text``) and links the entry over
    that text; single entries link through ``link_hash``. Both are the chain's definition: the
    HMAC over the canonical JSON of the whole entry, computed here independently."""
    fields = {"seq": seq, "at": at, "tag": tag, "actor_org": actor_org, "actor_client": actor_client}
    entry = {**fields, "at": at.isoformat(), "object_id": object_id, "payload": payload}
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    expected = hmac.new(b"k", b"0" * 64 + b"\n" + body, hashlib.sha256).hexdigest()
    assert link_hash(b"k", prev_hash="0" * 64, object_id=object_id, payload=payload, **fields) == expected
    found = link_hash_serialized(
        b"k", prev_hash="0" * 64, object_id=object_id, payload=canonical_text(payload), **fields
    )
    assert found == expected
