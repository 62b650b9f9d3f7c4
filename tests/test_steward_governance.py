"""Communities govern themselves (issue 14, items 1 and 2), through the HTTP API only.

* Stewards change their stewards: one proposes, a different client or person confirms before
  the proposal expires; the last steward stays; the operator gets 403 once the community exists.
* Clients that act for a community (rules:write, community:read) are made by its stewards,
  listed to them and disabled by them; the operator gets 403.
* Memberships named at intake are pending (the community's rules apply already), confirmed by
  the community in bulk (pseudonymous ids) or by the person through the recording organization,
  and ended by the person: the rules stop applying, and the community sees a count, not a name.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from api_helpers import Clock, all_rows_as_text, assert_error, assert_ok
from conftest import basic_auth
from governance_helpers import (
    COUNCIL_A,
    COUNCIL_B,
    GOVERNMENT,
    MEMBER,
    NATION_A,
    NATION_B,
    PROVIDER,
    RESEARCHER,
    Governance,
    reason_codes,
    seeded_governance,
)
from sqlalchemy import select

from consent_service.storage.models import Membership


def _clients(gov: Governance) -> None:
    """Every client a test calls, made before the test (making one writes rows)."""
    for headers in (first, second, lambda g: g.steward(NATION_B), lambda g: g.recorder()):
        headers(gov)
    gov.world.admin()
    gov.world.headers(GOVERNMENT, "consents:write")
    gov.world.headers(RESEARCHER, "community:read")
    gov.world.headers(RESEARCHER, "authorize")


# The world, with those clients, made once per module and backend; each test that asks for
# ``gov`` starts from a copy of it (conftest.seeded).
governance_seeds, seed, database_start, gov = seeded_governance("steward-governance", also=_clients)


@contextmanager
def nothing_changes(app) -> Iterator[None]:
    before = all_rows_as_text(app)
    yield
    assert all_rows_as_text(app) == before


def first(gov: Governance) -> dict[str, str]:
    """Nation A's first steward client (rules:write)."""
    return gov.world.headers(COUNCIL_A, "rules:write")


def second(gov: Governance) -> dict[str, str]:
    """Another client of Nation A's council: a second person."""
    return gov.world.headers(COUNCIL_A, "rules:write", "community:read")


def propose(client, headers, community=NATION_A, **body: Any):
    return client.post(f"/v1/communities/{community}/steward-changes", headers=headers, json=body)


def confirm(client, headers, change_id: str, community=NATION_A):
    return client.post(f"/v1/communities/{community}/steward-changes/{change_id}/confirm", headers=headers)


def stewards_of(client, headers, community=NATION_A) -> list[str]:
    return assert_ok(client.get(f"/v1/communities/{community}/steward-changes", headers=headers))["stewards"]


# -- steward changes ------------------------------------------------------------------------------


class TestTwoStewardsChangeTheStewards:
    def test_a_proposal_waits_and_a_second_client_applies_it(self, client, gov):
        change = assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        assert change["status"] == "pending" and change["stewards"] == [COUNCIL_A]
        listed = assert_ok(
            client.get(f"/v1/communities/{NATION_A}/steward-changes?status=pending", headers=second(gov))
        )
        assert [c["id"] for c in listed["changes"]] == [change["id"]]
        # Council B is no steward until the change is confirmed.
        assert_error(
            client.get(f"/v1/communities/{NATION_A}/rules", headers=gov.steward(NATION_B)), 403, "forbidden"
        )
        done = assert_ok(confirm(client, second(gov), change["id"]))
        assert done["status"] == "confirmed" and done["stewards"] == [COUNCIL_A, COUNCIL_B]
        assert done["confirmed_by_client"] != done["proposed_by_client"]
        assert_ok(client.get(f"/v1/communities/{NATION_A}/rules", headers=gov.steward(NATION_B)))
        assert (
            assert_ok(
                client.get(f"/v1/communities/{NATION_A}/steward-changes?status=pending", headers=first(gov))
            )["changes"]
            == []
        )

    def test_the_proposer_cannot_confirm_its_own_proposal(self, app, client, gov):
        change = assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        with nothing_changes(app):
            assert_error(confirm(client, first(gov), change["id"]), 403, "forbidden")
        assert stewards_of(client, first(gov)) == [COUNCIL_A]

    def test_a_removal_confirmed_takes_the_organization_out(self, client, gov):
        added = assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        assert_ok(confirm(client, second(gov), added["id"]))
        removal = assert_ok(
            propose(client, gov.steward(NATION_B), action="remove", organization=COUNCIL_A), 201
        )
        assert_ok(confirm(client, first(gov), removal["id"]))  # council A confirms its own removal
        assert stewards_of(client, gov.steward(NATION_B)) == [COUNCIL_B]
        assert_error(client.get(f"/v1/communities/{NATION_A}/rules", headers=first(gov)), 403, "forbidden")

    def test_the_last_steward_cannot_be_removed(self, app, client, gov):
        with nothing_changes(app):
            assert_error(
                propose(client, first(gov), action="remove", organization=COUNCIL_A), 409, "conflict"
            )

    def test_a_removal_that_would_leave_no_steward_is_refused_at_confirmation(self, app, client, gov):
        added = assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        assert_ok(confirm(client, second(gov), added["id"]))
        one = assert_ok(propose(client, first(gov), action="remove", organization=COUNCIL_A), 201)
        other = assert_ok(propose(client, first(gov), action="remove", organization=COUNCIL_B), 201)
        assert_ok(confirm(client, gov.steward(NATION_B), one["id"]))
        with nothing_changes(app):
            assert_error(confirm(client, gov.steward(NATION_B), other["id"]), 409, "conflict")
        assert stewards_of(client, gov.steward(NATION_B)) == [COUNCIL_B]

    def test_an_expired_proposal_cannot_be_confirmed_and_shows_expired(self, app, client, gov, monkeypatch):
        clock = Clock(monkeypatch)
        change = assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        clock.advance(timedelta(days=7, seconds=1))
        with nothing_changes(app):
            assert_error(confirm(client, second(gov), change["id"]), 409, "conflict")
        listed = assert_ok(client.get(f"/v1/communities/{NATION_A}/steward-changes", headers=first(gov)))
        assert [(c["id"], c["status"]) for c in listed["changes"]] == [(change["id"], "expired")]
        assert listed["stewards"] == [COUNCIL_A]
        # The same change may be proposed again.
        assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)

    def test_a_confirmed_change_is_not_confirmed_twice(self, app, client, gov):
        change = assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        assert_ok(confirm(client, second(gov), change["id"]))
        with nothing_changes(app):
            assert_error(confirm(client, gov.steward(NATION_B), change["id"]), 409, "conflict")

    def test_the_same_change_is_not_proposed_twice_while_it_waits(self, app, client, gov):
        assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        with nothing_changes(app):
            assert_error(propose(client, second(gov), action="add", organization=COUNCIL_B), 409, "conflict")


class TestWhoMayChangeStewards:
    def test_the_operator_gets_403_for_every_steward_change(self, app, client, gov, world):
        change = assert_ok(propose(client, first(gov), action="add", organization=COUNCIL_B), 201)
        with nothing_changes(app):
            assert_error(
                propose(client, world.admin(), action="add", organization=RESEARCHER), 403, "forbidden"
            )
            assert_error(confirm(client, world.admin(), change["id"]), 403, "forbidden")
            assert_error(
                client.get(f"/v1/communities/{NATION_A}/steward-changes", headers=world.admin()),
                403,
                "forbidden",
            )

    def test_a_steward_of_another_community_learns_nothing_of_a_change(self, app, client, gov):
        change = assert_ok(propose(client, first(gov), action="add", organization=RESEARCHER), 201)
        outsider = gov.steward(NATION_B)
        with nothing_changes(app):
            real = confirm(client, outsider, change["id"])
            made_up = confirm(client, outsider, str(uuid.uuid4()))
            assert_error(real, 403, "forbidden")
            assert (real.status_code, real.get_json()) == (made_up.status_code, made_up.get_json())
            assert_error(propose(client, outsider, action="add", organization=COUNCIL_B), 403, "forbidden")
            # Naming its own community, it cannot reach Nation A's change either.
            assert_error(confirm(client, outsider, change["id"], community=NATION_B), 404, "not_found")

    def test_an_unknown_community_is_404(self, app, client, gov):
        with nothing_changes(app):
            assert_error(
                propose(client, first(gov), "nation-z", action="add", organization=COUNCIL_B),
                404,
                "not_found",
            )

    @pytest.mark.parametrize(
        ("body", "field", "code"),
        [
            ({"action": "promote", "organization": COUNCIL_B}, "action", "validation_error"),
            ({"organization": COUNCIL_B}, "action", "validation_error"),
            ({"action": "add"}, "organization", "validation_error"),
            ({"action": "add", "organization": "no-such-org"}, "organization", "unknown_code"),
            ({"action": "add", "organization": COUNCIL_A}, "organization", "validation_error"),
            ({"action": "remove", "organization": RESEARCHER}, "organization", "validation_error"),
            (
                {"action": "add", "organization": COUNCIL_B, "reason": "x" * 1001},
                "reason",
                "validation_error",
            ),
            ({"action": "add", "organization": COUNCIL_B, "extra": 1}, "extra", "validation_error"),
        ],
    )
    def test_bad_input_is_400_naming_the_field_and_writes_nothing(self, app, client, gov, body, field, code):
        headers = first(gov)
        with nothing_changes(app):
            error = assert_error(propose(client, headers, **body), 400, code)
        assert field in error["details"], error


# -- clients that act for the community -------------------------------------------------------------


class TestCommunityClients:
    @pytest.mark.parametrize(
        "scopes", [["rules:write"], ["community:read"], ["consents:read", "rules:write"]]
    )
    def test_the_operator_cannot_mint_a_client_that_acts_for_a_community(
        self, app, client, gov, world, scopes
    ):
        with nothing_changes(app):
            response = client.post(
                "/v1/clients",
                headers=world.admin(),
                json={"organization": COUNCIL_A, "name": "x", "scopes": scopes},
            )
            assert_error(response, 403, "forbidden")

    def test_the_operator_makes_only_a_new_steward_organizations_very_first_client(
        self, app, client, gov, world
    ):
        world.org("council-x", "community-governance")
        assert_ok(
            client.post(
                "/v1/communities",
                headers=world.admin(),
                json={"id": "nation-x", "name": "X", "stewards": ["council-x"]},
            ),
            201,
        )
        body = {"organization": "council-x", "name": "first", "scopes": ["rules:write"]}
        first = assert_ok(client.post("/v1/clients", headers=world.admin(), json=body), 201)
        # Disabling every client of the council does not let the operator mint its way back in.
        assert_ok(client.post(f"/v1/clients/{first['client_id']}/disable", headers=world.admin()))
        with nothing_changes(app):
            for scopes in (["rules:write"], ["community:read"], ["consents:read"]):
                response = client.post("/v1/clients", headers=world.admin(), json={**body, "scopes": scopes})
                assert_error(response, 403, "forbidden")

    def test_a_steward_creates_lists_and_disables_its_own_client(self, client, gov):
        made = assert_ok(
            client.post(
                f"/v1/communities/{NATION_A}/clients",
                headers=first(gov),
                json={"name": "council laptop", "scopes": ["community:read"]},
            ),
            201,
        )
        assert (
            made["organization"] == COUNCIL_A
            and made["scopes"] == ["community:read"]
            and made["client_secret"]
        )
        token = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic_auth(made["client_id"], made["client_secret"]),
        )
        headers = {"Authorization": f"Bearer {assert_ok(token)['access_token']}"}
        assert_ok(client.get(f"/v1/communities/{NATION_A}/rules", headers=headers))
        listed = assert_ok(client.get(f"/v1/communities/{NATION_A}/clients", headers=second(gov)))
        assert made["client_id"] in [c["client_id"] for c in listed["clients"]]
        assert_ok(
            client.post(
                f"/v1/communities/{NATION_A}/clients/{made['client_id']}/disable", headers=second(gov)
            )
        )
        assert_error(client.get(f"/v1/communities/{NATION_A}/rules", headers=headers), 401, "unauthorized")

    @pytest.mark.parametrize("scopes", [["admin"], ["authorize"], ["audit:read"], []])
    def test_a_steward_client_has_only_the_community_scopes(self, app, client, gov, scopes):
        with nothing_changes(app):
            response = client.post(
                f"/v1/communities/{NATION_A}/clients",
                headers=first(gov),
                json={"name": "x", "scopes": scopes},
            )
            assert "scopes" in assert_error(response, 400, "validation_error")["details"]

    def test_another_communitys_steward_and_the_operator_cannot(self, app, client, gov, world):
        with nothing_changes(app):
            body = {"name": "x", "scopes": ["rules:write"]}
            assert_error(
                client.post(f"/v1/communities/{NATION_A}/clients", headers=gov.steward(NATION_B), json=body),
                403,
                "forbidden",
            )
            assert_error(
                client.post(f"/v1/communities/{NATION_A}/clients", headers=world.admin(), json=body),
                403,
                "forbidden",
            )


# -- memberships ----------------------------------------------------------------------------------------


def memberships(client, headers, community=NATION_A) -> dict[str, Any]:
    return assert_ok(client.get(f"/v1/communities/{community}/memberships", headers=headers))


def person(client, gov, consent_id: str, act: str, community=NATION_A, headers=None):
    return client.post(
        f"/v1/consents/{consent_id}/memberships/{community}/{act}", headers=headers or gov.recorder()
    )


class TestPendingMemberships:
    def test_a_membership_named_at_intake_is_pending_and_its_rules_apply(self, client, gov):
        consent = gov.consent()
        gov.rule()  # Nation A: no health research
        seen = memberships(client, first(gov))
        assert seen["counts"] == {"pending": 1, "confirmed": 0, "ended": 0}
        assert len(seen["pending"]) == 1 and set(seen["pending"][0]) == {"id", "named_on"}
        text = json.dumps(seen)
        assert MEMBER["value"] not in text and consent["id"] not in text
        assert "community_rule" in reason_codes(gov.ask("research", "health"))
        shown = assert_ok(client.get(f"/v1/consents/{consent['id']}/memberships", headers=gov.recorder()))
        assert [(m["community"], m["status"]) for m in shown["memberships"]] == [(NATION_A, "pending")]
        assert seen["pending"][0]["id"] not in json.dumps(shown)

    def test_a_pending_membership_applies_require_approval_too(self, client, gov):
        from governance_helpers import APPROVAL_RULE

        gov.consent()
        gov.rule(NATION_A, APPROVAL_RULE)
        assert "approval_required" in reason_codes(gov.ask("research", "health"))

    def test_the_community_confirms_in_bulk(self, client, gov):
        gov.consent()
        gov.consent(subject={"system": "urn:outreach-org:client", "value": "C-3000"})
        ids = [m["id"] for m in memberships(client, first(gov))["pending"]]
        assert len(ids) == 2
        answer = assert_ok(
            client.post(
                f"/v1/communities/{NATION_A}/memberships/confirm",
                headers=first(gov),
                json={"memberships": ids},
            )
        )
        assert sorted(answer["confirmed"]) == sorted(ids) and answer["already_confirmed"] == []
        seen = memberships(client, first(gov))
        assert seen["counts"] == {"pending": 0, "confirmed": 2, "ended": 0} and seen["pending"] == []
        again = assert_ok(
            client.post(
                f"/v1/communities/{NATION_A}/memberships/confirm",
                headers=first(gov),
                json={"memberships": ids[:1]},
            )
        )
        assert again == {"community": NATION_A, "confirmed": [], "already_confirmed": ids[:1]}

    @pytest.mark.parametrize(
        "ids",
        [[], ["not-an-id"], [str(uuid.uuid4())], "one", None],
    )
    def test_bad_ids_are_400_naming_memberships_and_nothing_is_confirmed(self, app, client, gov, ids):
        gov.consent()
        real = memberships(client, first(gov))["pending"][0]["id"]
        body = {"memberships": [real, *ids] if isinstance(ids, list) and ids else ids}
        with nothing_changes(app):
            response = client.post(
                f"/v1/communities/{NATION_A}/memberships/confirm", headers=first(gov), json=body
            )
            assert "memberships" in assert_error(response, 400, "validation_error")["details"]

    def test_another_communitys_membership_id_is_refused(self, app, client, gov):
        gov.consent(communities=[NATION_B])
        theirs = memberships(client, gov.steward(NATION_B), NATION_B)["pending"][0]["id"]
        with nothing_changes(app):
            response = client.post(
                f"/v1/communities/{NATION_A}/memberships/confirm",
                headers=first(gov),
                json={"memberships": [theirs]},
            )
            assert_error(response, 400, "validation_error")
            assert_error(
                client.get(f"/v1/communities/{NATION_B}/memberships", headers=first(gov)), 403, "forbidden"
            )

    def test_the_operator_and_a_requester_see_no_memberships(self, app, client, gov, world):
        gov.consent()
        assert_error(
            client.get(f"/v1/communities/{NATION_A}/memberships", headers=world.admin()), 403, "forbidden"
        )
        assert_error(
            client.get(
                f"/v1/communities/{NATION_A}/memberships", headers=world.headers(RESEARCHER, "community:read")
            ),
            403,
            "forbidden",
        )


class TestThePersonConfirmsOrEnds:
    def test_the_person_confirms_through_the_recording_organization(self, app, client, gov):
        consent = gov.consent()
        done = assert_ok(person(client, gov, consent["id"], "confirm"))
        assert (done["community"], done["status"], done["confirmed_via"]) == (NATION_A, "confirmed", "person")
        assert memberships(client, first(gov))["counts"]["confirmed"] == 1
        with nothing_changes(app):
            assert_error(person(client, gov, consent["id"], "confirm"), 409, "conflict")

    def test_ending_stops_the_rules_and_the_community_is_told_without_a_name(self, app, client, gov):
        consent = gov.consent()
        gov.rule()
        assert gov.ask("research", "health")["decision"] == "deny"
        ended = assert_ok(person(client, gov, consent["id"], "end"))
        assert ended["status"] == "ended" and ended["ended_at"]
        answer = gov.ask("research", "health")
        assert answer["decision"] == "permit", answer  # the person's own consent now decides
        seen = memberships(client, first(gov))
        assert seen["counts"] == {"pending": 0, "confirmed": 0, "ended": 1}
        assert seen["ended_last_days"] == 1 and seen["last_ended_on"] and seen["pending"] == []
        assert consent["id"] not in json.dumps(seen) and MEMBER["value"] not in json.dumps(seen)
        with app.app_context():
            pass
        with nothing_changes(app):
            assert_error(person(client, gov, consent["id"], "end"), 409, "conflict")

    def test_batch_decisions_read_memberships_as_single_ones_do(self, client, gov, world):
        ended = gov.consent()
        other = {"system": "urn:outreach-org:client", "value": "C-3000"}
        gov.consent(subject=other)  # pending: the rule applies
        gov.rule()
        assert_ok(person(client, gov, ended["id"], "end"))
        answer = assert_ok(
            client.post(
                "/v1/authorize/batch",
                headers=world.headers(RESEARCHER, "authorize"),
                json={"subjects": [MEMBER, other], "purpose": "research", "data_categories": ["health"]},
            )
        )
        assert [d["decision"] for d in answer["decisions"]] == ["permit", "deny"]

    def test_an_ended_membership_is_not_brought_back_by_an_amendment(self, app, client, gov):
        from api_helpers import body_with
        from governance_helpers import MEMBER_CONSENT

        consent = gov.consent()
        assert_ok(person(client, gov, consent["id"], "end"))
        amended = {
            k: v for k, v in body_with(MEMBER_CONSENT, purposes=["research"]).items() if k != "subject"
        }
        assert_ok(
            client.post(
                f"/v1/consents/{consent['id']}/amend", json={**amended, "version": 1}, headers=gov.recorder()
            )
        )
        assert memberships(client, first(gov))["counts"]["ended"] == 1

    def test_rejoining_gives_a_new_pseudonym(self, app, client, gov):
        consent = gov.consent()
        old = memberships(client, first(gov))["pending"][0]["id"]
        assert_ok(person(client, gov, consent["id"], "end"))
        back = assert_ok(person(client, gov, consent["id"], "confirm"))
        assert back["status"] == "confirmed" and back["ended_at"] is None
        with gov.world.services.sessions() as session:
            row = session.scalars(select(Membership)).one()
            assert row.id != old and row.status == "confirmed"
        gov.rule()
        assert gov.ask("research", "health")["decision"] == "deny"

    def test_another_organization_gets_404_exactly_as_for_no_consent(self, app, client, gov, world):
        consent = gov.consent()
        other = world.headers(GOVERNMENT, "consents:write")
        with nothing_changes(app):
            for act in ("confirm", "end"):
                theirs = person(client, gov, consent["id"], act, headers=other)
                missing = person(client, gov, str(uuid.uuid4()), act, headers=other)
                assert_error(theirs, 404, "not_found")
                assert (theirs.status_code, theirs.get_json()) == (missing.status_code, missing.get_json())
            assert_error(person(client, gov, consent["id"], "end", headers=world.admin()), 403, "forbidden")

    def test_a_community_the_consent_did_not_name_is_404(self, app, client, gov):
        consent = gov.consent()
        with nothing_changes(app):
            assert_error(person(client, gov, consent["id"], "end", community=NATION_B), 404, "not_found")
            assert_error(person(client, gov, consent["id"], "end", community="nation-z"), 404, "not_found")

    def test_a_steward_cannot_end_a_membership(self, app, client, gov):
        consent = gov.consent()
        with nothing_changes(app):
            assert_error(person(client, gov, consent["id"], "end", headers=first(gov)), 403, "forbidden")
        assert PROVIDER
