"""No stale decisions (issue 6 item 4), in process; bench/stale_check.py does it across gunicorn
instances on PostgreSQL.

* Two instances (two apps on one database, each with its own warm rule cache): whatever one
  changes (a revocation, a new deny rule, a retired approval), the other's very next decision
  sees it. The same check against an instance with the test-only stale rule cache answers a
  stale permit: the check can fail.
* Flip: a decision never mixes two snapshots. The state flips, in one transaction, between
  S0 = (consent active, deny rule active) and S1 = (consent revoked, rule retired); either is a
  deny, but consents from S0 with rules from S1 would be a permit. The flip is made to happen
  exactly between the decision's first read (consents) and its next (memberships and rule
  versions): the decision must still deny. The control, a decision whose reads each see the
  latest commit, permits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from api_helpers import CONSENT, SUBJECT, engine_of
from sqlalchemy import create_engine, event, text

from consent_service import create_app
from consent_service.container import EXTENSION

ASK = {"subject": SUBJECT, "purpose": "research", "data_categories": ["health"]}


def decide(client, headers) -> str:
    response = client.post("/v1/authorize", headers=headers, json=ASK)
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["decision"])


@pytest.fixture
def pair(app_config, app, world):
    """Instance A is the fixture's app; ``pair(**settings)`` makes a B on the same database."""
    made = []

    def instance(**settings: Any):
        other = create_app({**app_config, **settings})
        made.append(other)
        return other

    yield instance
    for other in made:
        other.extensions[EXTENSION].sessions.kw["bind"].dispose()


@pytest.fixture
def member(client, world) -> dict[str, Any]:
    """A member of Nation A whose consent lets univ do health research; univ is permitted."""
    for org_id, org_type in (
        ("outreach-org", "service-provider"),
        ("univ", "research"),
        ("nation-a-council", "community-governance"),
    ):
        world.org(org_id, org_type)
    assert (
        client.post(
            "/v1/communities",
            headers=world.admin(),
            json={"id": "nation-a", "name": "Nation A", "stewards": ["nation-a-council"]},
        ).status_code
        == 201
    )
    consent = client.post(
        "/v1/consents",
        headers=world.headers("outreach-org", "consents:write"),
        json={
            **CONSENT,
            "communities": ["nation-a"],
            "purposes": ["research"],
            "data_categories": ["health"],
            "recipients": ["univ"],
        },
    ).get_json()
    return {
        "consent_id": consent["id"],
        "steward": world.headers("nation-a-council", "rules:write"),
        "writer": world.headers("outreach-org", "consents:write"),
        "univ": world.headers("univ", "authorize"),
    }


def warm(client, headers, times: int = 3) -> None:
    for _ in range(times):
        assert decide(client, headers) == "permit"


DENY_HEALTH_RESEARCH = {
    "effect": "deny",
    "purposes": ["research"],
    "data_categories": ["health"],
    "requesters": ["*"],
    "reason": "no health research",
}


class TestAcrossInstances:
    def test_a_revocation_through_one_is_seen_by_the_others_next_decision(self, client, pair, member):
        b = pair().test_client()
        warm(b, member["univ"])
        assert (
            client.post(
                f"/v1/consents/{member['consent_id']}/revoke", headers=member["writer"], json={}
            ).status_code
            == 200
        )
        assert decide(b, member["univ"]) == "deny"

    def test_a_new_deny_rule_through_one_is_seen_by_the_others_next_decision(self, client, pair, member):
        b = pair().test_client()
        warm(b, member["univ"])
        assert (
            client.post(
                "/v1/communities/nation-a/rules", headers=member["steward"], json=DENY_HEALTH_RESEARCH
            ).status_code
            == 201
        )
        assert decide(b, member["univ"]) == "deny"

    def test_a_revoked_approval_through_one_is_seen_by_the_others_next_decision(self, client, pair, member):
        steward = member["steward"]
        assert (
            client.post(
                "/v1/communities/nation-a/rules",
                headers=steward,
                json={**DENY_HEALTH_RESEARCH, "effect": "require_approval"},
            ).status_code
            == 201
        )
        approval = client.post(
            "/v1/communities/nation-a/approvals",
            headers=steward,
            json={"requester": "univ", "purposes": ["research"], "data_categories": ["health"]},
        ).get_json()
        b = pair().test_client()
        warm(b, member["univ"])
        assert (
            client.post(
                f"/v1/communities/nation-a/approvals/{approval['id']}/revoke", headers=steward, json={}
            ).status_code
            == 200
        )
        assert decide(b, member["univ"]) == "deny"

    def test_the_check_fails_against_a_deliberately_stale_instance(self, client, pair, member):
        """The control: B keeps the rules it compiled first (TESTING_ONLY_STALE_RULE_CACHE)."""
        b = pair(TESTING_ONLY_STALE_RULE_CACHE=True).test_client()
        warm(b, member["univ"])
        assert (
            client.post(
                "/v1/communities/nation-a/rules", headers=member["steward"], json=DENY_HEALTH_RESEARCH
            ).status_code
            == 201
        )
        assert decide(b, member["univ"]) == "permit"  # stale
        assert decide(client, member["univ"]) == "deny"  # the sound instance is right


# -- flip ------------------------------------------------------------------------------------------


class Flipper:
    """Moves the world between S0 and S1 in one transaction, from a connection of its own."""

    def __init__(self, app, member: dict[str, Any], rule_id: str) -> None:
        settings = app.extensions[EXTENSION].settings
        url = settings["DATABASE_URL"]
        options = {"options": f"-c search_path={settings['DB_SCHEMA']}"} if settings.get("DB_SCHEMA") else {}
        self.engine = create_engine(url, connect_args=options)
        self.consent_id, self.rule_id = member["consent_id"], rule_id
        self.state = 0

    def flip(self) -> None:
        to_s1 = self.state == 0
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE consent SET status = :s WHERE id = :c"),
                {"s": "revoked" if to_s1 else "active", "c": self.consent_id},
            )
            retired = "CURRENT_TIMESTAMP" if to_s1 else "NULL"
            conn.execute(
                text(f"UPDATE community_rule SET retired_at = {retired} WHERE id = :r"), {"r": self.rule_id}
            )
            conn.execute(
                text("UPDATE community SET policy_version = policy_version + 1 WHERE id = 'nation-a'")
            )
        self.state = 1 - self.state

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def flipper(app, client, member) -> Iterator[Flipper]:
    rule = client.post(
        "/v1/communities/nation-a/rules", headers=member["steward"], json=DENY_HEALTH_RESEARCH
    ).get_json()
    assert decide(client, member["univ"]) == "deny"  # S0, and the rule cache is warm
    flipper = Flipper(app, member, rule["id"])
    yield flipper
    flipper.close()


@contextmanager
def flip_between_first_and_second_read(app, flipper: Flipper) -> Iterator[dict[str, int]]:
    """Flip once, right before the decision reads memberships (after it read the consents)."""
    seen = {"flips": 0}

    def before(conn, cursor, statement, parameters, context, executemany):
        if seen["flips"] == 0 and "membership" in statement.lower():
            flipper.flip()
            seen["flips"] += 1

    engine = engine_of(app)
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


@contextmanager
def reads_without_a_snapshot(monkeypatch) -> Iterator[None]:
    """The control: every read of a decision commits, so the next one sees the latest state."""
    from consent_service import container

    class LatestEachTime:
        def __init__(self, session: Any) -> None:
            self._session = session

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            frozen = self._session.execute(*args, **kwargs).freeze()
            self._session.commit()
            return frozen()

        def scalars(self, *args: Any, **kwargs: Any) -> Any:
            return self.execute(*args, **kwargs).scalars()

        def connection(self, *args: Any, **kwargs: Any) -> Any:
            outer = self

            class Connection:
                def execute(self, *args: Any, **kwargs: Any) -> Any:
                    # read-only (on SQLite a deferred BEGIN), as the service's own reads
                    conn = outer._session.connection(execution_options={"consent_readonly": True})
                    frozen = conn.execute(*args, **kwargs).freeze()
                    outer._session.commit()
                    return frozen()

            return Connection()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._session, name)

    @contextmanager
    def latest(factory: Any) -> Iterator[Any]:
        session = factory()
        try:
            yield LatestEachTime(session)
        finally:
            session.rollback()
            session.close()

    monkeypatch.setattr(container, "read_snapshot", latest)
    yield


class TestFlip:
    def test_a_flip_between_two_reads_of_a_decision_is_not_seen_by_it(self, app, client, member, flipper):
        with flip_between_first_and_second_read(app, flipper) as seen:
            answer = client.post("/v1/authorize", headers=member["univ"], json=ASK).get_json()
        assert seen["flips"] == 1
        assert answer["decision"] == "deny"
        assert [r["code"] for r in answer["reasons"]] == ["community_rule"]  # all of S0
        assert decide(client, member["univ"]) == "deny"  # and now all of S1 (no_consent)

    def test_the_control_without_a_snapshot_mixes_them_and_permits(
        self, app, client, member, flipper, monkeypatch
    ):
        with reads_without_a_snapshot(monkeypatch), flip_between_first_and_second_read(app, flipper) as seen:
            answer = client.post("/v1/authorize", headers=member["univ"], json=ASK).get_json()
        assert seen["flips"] == 1
        assert answer["decision"] == "permit"  # consent from S0, rules from S1: what no snapshot holds

    def test_decisions_racing_continuous_flips_never_permit(self, app, member, flipper):
        stop = time.monotonic() + 3.0
        outcomes: dict[str, int] = {}
        flips = {"n": 0}
        errors: list[str] = []

        def flip_forever() -> None:
            while time.monotonic() < stop:
                try:
                    flipper.flip()
                    flips["n"] += 1
                except Exception as exc:  # SQLite busy: try again
                    errors.append(type(exc).__name__)
                time.sleep(0.001)

        def ask_forever() -> None:
            client = app.test_client()
            while time.monotonic() < stop:
                response = client.post("/v1/authorize", headers=member["univ"], json=ASK)
                ok = response.status_code == 200
                key = response.get_json()["decision"] if ok else str(response.status_code)
                outcomes[key] = outcomes.get(key, 0) + 1

        threads = [
            threading.Thread(target=flip_forever),
            *(threading.Thread(target=ask_forever) for _ in range(3)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert flips["n"] > 10 and outcomes.get("deny", 0) > 10, (flips, outcomes, errors[:3])
        assert "permit" not in outcomes, outcomes
        assert set(outcomes) <= {"deny", "503"}, outcomes  # a busy store is a 503, never a permit
