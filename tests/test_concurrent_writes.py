"""Nothing lost, nothing doubled (issue 6 item 3): simultaneous writes to one consent.

Threads released together by a barrier, each with its own test client, on SQLite and (when
configured) PostgreSQL, several rounds each:

* two amendments of version N: exactly one 200 (version N+1) and one 409; the ledger then holds
  N+1 versions, numbered 1..N+1 without gaps, and the consent points at the newest;
* amendments without a version: every 200 made its own version, and versions stay gap-free;
* an amendment racing a revocation: the consent ends revoked, and no version was added after
  the revocation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from api_helpers import record_consent, rough_sleeper_orgs
from sqlalchemy import select

from consent_service.container import EXTENSION
from consent_service.storage.models import Consent, ConsentEvent, ConsentVersion

ROUNDS = 5
TERMS = {
    "purposes": ["service-delivery"],
    "data_categories": ["housing"],
    "recipients": ["gla"],
    "evidence": {"method": "written", "obtained_by": "worker-2"},
}


def together(app, *calls: Callable[[Any], Any]) -> list[Any]:
    """Run each ``call(client)`` in its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[Any], Any]) -> None:
        client = app.test_client()
        barrier.wait(timeout=30)
        answers[i] = call(client)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(not thread.is_alive() for thread in threads)
    return answers


def ledger(app, consent_id: str) -> tuple[Consent, list[int], list[ConsentEvent]]:
    with app.extensions[EXTENSION].sessions() as session:
        consent = session.get(Consent, consent_id)
        versions = sorted(
            session.scalars(
                select(ConsentVersion.version).where(ConsentVersion.consent_id == consent_id)
            ).all()
        )
        events = list(
            session.scalars(
                select(ConsentEvent).where(ConsentEvent.consent_id == consent_id).order_by(ConsentEvent.id)
            ).all()
        )
        return consent, versions, events


@pytest.fixture
def writer(client, world) -> dict[str, str]:
    rough_sleeper_orgs(world)
    return world.headers("outreach-org", "consents:write")


def amend(consent_id: str, headers: dict[str, str], **changes: Any) -> Callable[[Any], Any]:
    return lambda client: client.post(
        f"/v1/consents/{consent_id}/amend", headers=headers, json={**TERMS, **changes}
    )


class TestTwoAmendmentsOfOneVersion:
    @pytest.mark.parametrize("round_", range(ROUNDS))
    def test_one_wins_the_other_gets_409_and_no_version_is_doubled(self, app, client, writer, round_):
        consent_id = record_consent(client, writer)["id"]
        first, second = together(
            app,
            amend(consent_id, writer, version=1, data_categories=["housing"]),
            amend(consent_id, writer, version=1, data_categories=["health"]),
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 409], [first.get_json(), second.get_json()]
        winner = first if first.status_code == 200 else second
        loser = second if winner is first else first
        assert winner.get_json()["version"] == 2
        assert loser.get_json()["error"]["code"] == "conflict"
        consent, versions, events = ledger(app, consent_id)
        assert versions == [1, 2]
        assert consent.current_version == 2
        assert [e.kind for e in events] == ["recorded", "amended"]
        current = client.get(f"/v1/consents/{consent_id}", headers=writer).get_json()
        assert current["data_categories"] == winner.get_json()["data_categories"]

    def test_many_amendments_of_one_version_have_exactly_one_winner(self, app, client, writer):
        consent_id = record_consent(client, writer)["id"]
        answers = together(
            app,
            *(
                amend(consent_id, writer, version=1, recipients=["gla", "outreach-org"][:n])
                for n in (1, 2, 1, 2, 1, 2)
            ),
        )
        assert sorted(a.status_code for a in answers) == [200] + [409] * 5
        assert ledger(app, consent_id)[1] == [1, 2]


class TestAmendmentsWithoutAVersion:
    @pytest.mark.parametrize("round_", range(ROUNDS))
    def test_each_success_is_its_own_version_and_none_is_lost(self, app, client, writer, round_):
        consent_id = record_consent(client, writer)["id"]
        answers = together(app, *(amend(consent_id, writer) for _ in range(3)))
        ok = [a.get_json()["version"] for a in answers if a.status_code == 200]
        assert all(a.status_code in (200, 409) for a in answers)
        assert len(ok) == len(set(ok)) >= 1
        consent, versions, events = ledger(app, consent_id)
        assert versions == list(range(1, 2 + len(ok)))  # one version per 200, no gaps, no extras
        assert consent.current_version == versions[-1]
        assert sorted(ok) == versions[1:]
        assert [e.kind for e in events].count("amended") == len(ok)


class TestAmendmentRacingRevocation:
    @pytest.mark.parametrize("round_", range(ROUNDS))
    def test_the_consent_ends_revoked_with_nothing_added_after(self, app, client, writer, round_):
        consent_id = record_consent(client, writer)["id"]
        amended, revoked = together(
            app,
            amend(consent_id, writer, version=1),
            lambda c: c.post(f"/v1/consents/{consent_id}/revoke", headers=writer, json={"reason": "asked"}),
        )
        assert revoked.status_code == 200, revoked.get_json()
        assert amended.status_code in (200, 409), amended.get_json()
        consent, versions, events = ledger(app, consent_id)
        assert consent.status == "revoked"
        kinds = [e.kind for e in events]
        assert kinds[-1] == "revoked"  # nothing after the revocation
        assert versions == ([1, 2] if amended.status_code == 200 else [1])
