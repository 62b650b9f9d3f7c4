"""Community governance API: rules, approvals and the decisions view, and who may use them.

Contract: "Collective rules (scope rules:write; caller's organization must be a steward of
the community)". One class per behaviour, through the HTTP API only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from api_helpers import (
    Clock,
    all_rows_as_text,
    assert_error,
    assert_ok,
    body_with,
    engine_of,
    in_days,
    iso,
    without,
)
from governance_helpers import (
    APPROVAL,
    APPROVAL_RULE,
    COUNCIL_A,
    DENY_RULE,
    GOVERNMENT,
    MEMBER,
    NATION_A,
    NATION_B,
    OUTSIDER,
    RESEARCHER,
    Governance,
    seeded_governance,
)
from sqlalchemy import select

from consent_service.storage.models import AuditEntry

governance_seeds, seed, database_start, gov = seeded_governance("communities")


@contextmanager
def nothing_changes(app) -> Iterator[None]:
    """Assert that the block changes no row of any table (not only that it adds none)."""
    before = all_rows_as_text(app)
    yield
    assert all_rows_as_text(app) == before


def last_audit_entry(app) -> AuditEntry:
    with engine_of(app).connect() as conn:
        return conn.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()


# -- rules ---------------------------------------------------------------------------------------


class TestCreatingARule:
    def test_the_rule_is_returned_with_who_made_it_and_when(self, gov):
        rule = gov.rule(base=APPROVAL_RULE)

        assert rule["id"]
        assert rule["community"] == NATION_A
        assert rule["status"] == "active"
        assert rule["created_by"] == COUNCIL_A
        assert rule["created_at"]
        assert rule["retired_at"] is None
        for field, value in APPROVAL_RULE.items():
            assert rule[field] == value

    def test_it_is_listed_for_the_community_only(self, gov):
        rule = gov.rule()

        listed = assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/rules", headers=gov.steward()))
        elsewhere = assert_ok(
            gov.client.get(f"/v1/communities/{NATION_B}/rules", headers=gov.steward(NATION_B))
        )

        assert listed == {"rules": [rule]}
        assert elsewhere == {"rules": []}

    def test_wildcards_and_named_requesters_are_accepted(self, gov):
        rule = gov.rule(data_categories=["*"], requesters=[RESEARCHER, GOVERNMENT])

        assert (rule["data_categories"], rule["requesters"]) == (["*"], [RESEARCHER, GOVERNMENT])


class TestLocalContextsLabels:
    def test_short_forms_are_stored_under_the_full_name_once(self, gov):
        rule = gov.rule(labels=["TK NC", "tk non-commercial", "BC CV", "TK Notice"])

        assert rule["labels"] == ["TK Non-Commercial", "BC Consent Verified", "TK Notice"]

    def test_an_unknown_label_is_refused(self, gov, app):
        headers = gov.steward()
        with nothing_changes(app):
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/rules",
                headers=headers,
                json=body_with(DENY_RULE, labels=["TK Non-Commercial", "TK Made Up"]),
            )

        error = assert_error(response, 400, "validation_error")
        assert error["details"] == {"labels": ["not a Local Contexts label or notice: TK Made Up"]}


class TestRetiringARule:
    def test_it_is_kept_in_history_with_who_retired_it_when_and_why(self, gov):
        rule = gov.rule()

        retired = gov.retire(rule, reason="agreement reached")

        assert retired["status"] == "retired"
        assert (retired["retired_by"], retired["retired_reason"]) == (COUNCIL_A, "agreement reached")
        assert retired["retired_at"] >= retired["created_at"]
        history = assert_ok(
            gov.client.get(f"/v1/communities/{NATION_A}/rules?include_retired=true", headers=gov.steward())
        )
        assert history == {"rules": [retired]}

    def test_it_is_no_longer_listed_as_active(self, gov):
        gov.retire(gov.rule())

        assert assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/rules", headers=gov.steward())) == {
            "rules": []
        }

    def test_the_reason_may_come_as_a_query_parameter(self, gov):
        rule = gov.rule()

        response = gov.client.delete(
            f"/v1/communities/{NATION_A}/rules/{rule['id']}?reason=superseded", headers=gov.steward()
        )

        assert assert_ok(response)["retired_reason"] == "superseded"

    def test_the_reason_is_optional(self, gov):
        assert gov.retire(gov.rule())["retired_reason"] is None

    def test_retiring_twice_is_a_conflict(self, gov, app):
        rule = gov.retire(gov.rule())
        headers = gov.steward()

        with nothing_changes(app):
            response = gov.client.delete(f"/v1/communities/{NATION_A}/rules/{rule['id']}", headers=headers)

        assert_error(response, 409, "conflict")

    @pytest.mark.parametrize("where", ["unknown id", "another community's rule"])
    def test_a_rule_not_of_this_community_is_not_found(self, gov, app, where):
        rule_id = "no-such-rule" if where == "unknown id" else gov.rule(NATION_B)["id"]
        headers = gov.steward()

        with nothing_changes(app):
            response = gov.client.delete(f"/v1/communities/{NATION_A}/rules/{rule_id}", headers=headers)

        assert_error(response, 404, "not_found")


# -- approvals -------------------------------------------------------------------------------------


class TestApprovals:
    def test_granting_returns_the_approval_with_who_and_when(self, gov):
        approval = gov.approval(expires_at=in_days(30), notes="DSA 2027-04")

        assert approval["status"] == "active"
        assert (approval["community"], approval["requester"], approval["created_by"]) == (
            NATION_A,
            RESEARCHER,
            COUNCIL_A,
        )
        assert (approval["purposes"], approval["data_categories"]) == (["research"], ["health"])
        assert approval["notes"] == "DSA 2027-04"

    def test_revoked_approvals_are_listed_only_on_request(self, gov):
        kept = gov.approval()
        revoked = gov.revoke(gov.approval(requester=GOVERNMENT), reason="project ended")

        listed = assert_ok(gov.client.get(f"/v1/communities/{NATION_A}/approvals", headers=gov.steward()))
        everything = assert_ok(
            gov.client.get(
                f"/v1/communities/{NATION_A}/approvals?include_revoked=true", headers=gov.steward()
            )
        )

        assert listed == {"approvals": [kept]}
        assert everything == {"approvals": [kept, revoked]}
        assert (revoked["status"], revoked["revoked_by"], revoked["revoked_reason"]) == (
            "revoked",
            COUNCIL_A,
            "project ended",
        )

    def test_an_approval_past_its_expiry_is_listed_as_expired(self, gov, monkeypatch):
        clock = Clock(monkeypatch)
        gov.approval(expires_at=in_days(1))
        clock.advance(timedelta(days=2))

        [approval] = assert_ok(
            gov.client.get(f"/v1/communities/{NATION_A}/approvals", headers=gov.steward())
        )["approvals"]

        assert approval["status"] == "expired"

    def test_revoking_twice_is_a_conflict(self, gov, app):
        approval = gov.revoke(gov.approval())
        headers = gov.steward()

        with nothing_changes(app):
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/approvals/{approval['id']}/revoke", headers=headers, json={}
            )

        assert_error(response, 409, "conflict")

    def test_an_approval_of_another_community_is_not_found(self, gov, app):
        approval = gov.approval(NATION_B)
        headers = gov.steward()

        with nothing_changes(app):
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/approvals/{approval['id']}/revoke", headers=headers, json={}
            )

        assert_error(response, 404, "not_found")


class TestSimultaneousChangesToOneCommunity:
    def test_a_rule_retired_four_times_at_once_is_retired_once(self, gov, app):
        rule = gov.rule()
        headers = gov.steward()
        statuses: list[int] = []

        def retire() -> None:
            response = app.test_client().delete(
                f"/v1/communities/{NATION_A}/rules/{rule['id']}", headers=headers
            )
            statuses.append(response.status_code)

        before = gov.policy_version()
        threads = [threading.Thread(target=retire) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(statuses) == [200, 409, 409, 409]
        assert gov.policy_version() == before + 1
        assert last_audit_entry(app).tag == "rule:retired"


# -- every change is versioned and audited --------------------------------------------------------


class TestEveryChangeBumpsThePolicyVersionAndIsAudited:
    def test_rule_and_approval_changes(self, gov, app):
        steps = [
            ("rule:created", lambda: gov.rule()),
            ("rule:retired", lambda: gov.retire(gov.rule(base=APPROVAL_RULE))),
            ("approval:granted", lambda: gov.approval()),
            ("approval:revoked", lambda: gov.revoke(gov.approval(requester=GOVERNMENT))),
        ]
        for tag, change in steps:
            before = gov.policy_version()
            changed = change()

            entry = last_audit_entry(app)
            assert (entry.tag, entry.object_id, entry.actor_org) == (tag, changed["id"], COUNCIL_A)
            assert entry.payload["community"] == NATION_A
            # a retirement or revocation is preceded by the creation it undoes
            assert gov.policy_version() == before + (1 if tag.endswith(("created", "granted")) else 2)

    def test_another_communitys_version_is_left_alone(self, gov):
        before = gov.policy_version(NATION_B)

        gov.rule(NATION_A)

        assert gov.policy_version(NATION_B) == before


# -- bad input ----------------------------------------------------------------------------------------


BAD_RULES = {
    "unknown purpose": ({"purposes": ["fishing"]}, "unknown_code", "purposes"),
    "unknown category": ({"data_categories": ["dreams"]}, "unknown_code", "data_categories"),
    "unknown requester": ({"requesters": ["nobody-org"]}, "unknown_code", "requesters"),
    "wildcard purpose": ({"purposes": ["*"]}, "validation_error", "purposes"),
    "unknown effect": ({"effect": "allow"}, "validation_error", "effect"),
    "empty purposes": ({"purposes": []}, "validation_error", "purposes"),
    "no reason": (without("reason"), "validation_error", "reason"),
    "empty reason": ({"reason": ""}, "validation_error", "reason"),
    "unknown field": ({"priority": 1}, "validation_error", "priority"),
    "unknown obligation": ({"obligations": {"be_nice": True}}, "validation_error", "obligations"),
    "flag not true": ({"obligations": {"no_linkage": False}}, "validation_error", "obligations"),
    "cell size zero": (
        {"obligations": {"aggregate_only": True, "min_cell_size": 0}},
        "validation_error",
        "obligations",
    ),
    "cell size text": (
        {"obligations": {"aggregate_only": True, "min_cell_size": "10"}},
        "validation_error",
        "obligations",
    ),
    "cell size alone": ({"obligations": {"min_cell_size": 10}}, "validation_error", "obligations"),
    "retention zero": ({"obligations": {"retention_days": 0}}, "validation_error", "obligations"),
    "retention boolean": ({"obligations": {"retention_days": True}}, "validation_error", "obligations"),
    "labels not a list": ({"labels": "TK Non-Commercial"}, "validation_error", "labels"),
}

BAD_APPROVALS = {
    "unknown requester": ({"requester": "nobody-org"}, "unknown_code", "requester"),
    "wildcard requester": ({"requester": "*"}, "validation_error", "requester"),
    "unknown purpose": ({"purposes": ["fishing"]}, "unknown_code", "purposes"),
    "wildcard category": ({"data_categories": ["*"]}, "validation_error", "data_categories"),
    "already expired": ({"expires_at": in_days(-1)}, "validation_error", "expires_at"),
    "time without zone": ({"expires_at": "2030-01-01T00:00:00"}, "validation_error", "expires_at"),
    "no requester": (without("requester"), "validation_error", "requester"),
}


class TestBadInputIsRefusedAndNothingIsWritten:
    @pytest.mark.parametrize("changes, code, field", BAD_RULES.values(), ids=BAD_RULES.keys())
    def test_a_bad_rule(self, gov, app, changes, code, field):
        headers = gov.steward()
        with nothing_changes(app):
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/rules", headers=headers, json=body_with(APPROVAL_RULE, **changes)
            )

        assert field in assert_error(response, 400, code)["details"]

    @pytest.mark.parametrize("changes, code, field", BAD_APPROVALS.values(), ids=BAD_APPROVALS.keys())
    def test_a_bad_approval(self, gov, app, changes, code, field):
        headers = gov.steward()
        with nothing_changes(app):
            response = gov.client.post(
                f"/v1/communities/{NATION_A}/approvals", headers=headers, json=body_with(APPROVAL, **changes)
            )

        assert field in assert_error(response, 400, code)["details"]

    @pytest.mark.parametrize(
        "query",
        [
            "limit=0",
            "limit=1001",
            "since=yesterday",
            "since=2027-01-01T00:00:00",
            "since=2027-02-01T00:00:00Z&until=2027-01-01T00:00:00Z",
            "subject=C-1042",
            "sinse=2027-01-01T00:00:00Z",
        ],
    )
    def test_a_bad_decisions_query(self, gov, query):
        response = gov.client.get(f"/v1/communities/{NATION_A}/decisions?{query}", headers=gov.steward())

        assert_error(response, 400, "validation_error")

    def test_a_bad_retirement_reason(self, gov, app):
        rule = gov.rule()
        headers = gov.steward()
        with nothing_changes(app):
            response = gov.client.delete(
                f"/v1/communities/{NATION_A}/rules/{rule['id']}", headers=headers, json={"reason": "x" * 2001}
            )

        assert_error(response, 400, "validation_error")


# -- steward boundaries: every management endpoint -----------------------------------------------------


def endpoints(gov: Governance, community: str = NATION_A) -> dict[str, tuple[str, str, Any, int]]:
    """Every management endpoint: (method, path, body, the status a steward gets)."""
    rule, approval = gov.rule(community), gov.approval(community)
    base = f"/v1/communities/{community}"
    return {
        # not the rule just made: that one would be a duplicate (409 duplicate_rule)
        "create rule": ("POST", f"{base}/rules", body_with(DENY_RULE, purposes=["service-planning"]), 201),
        "list rules": ("GET", f"{base}/rules", None, 200),
        "retire rule": ("DELETE", f"{base}/rules/{rule['id']}", None, 200),
        "grant approval": ("POST", f"{base}/approvals", APPROVAL, 201),
        "list approvals": ("GET", f"{base}/approvals", None, 200),
        "revoke approval": ("POST", f"{base}/approvals/{approval['id']}/revoke", {}, 200),
        "see decisions": ("GET", f"{base}/decisions", None, 200),
    }


ENDPOINTS = [
    "create rule",
    "list rules",
    "retire rule",
    "grant approval",
    "list approvals",
    "revoke approval",
    "see decisions",
]

OUTSIDERS = {
    "steward of another community": lambda gov: gov.steward(NATION_B, "rules:write", "community:read"),
    "organization that is no steward": lambda gov: gov.world.headers(
        RESEARCHER, "rules:write", "community:read"
    ),
    "steward without the scope": lambda gov: gov.steward(NATION_A, "consents:write", "authorize"),
    "the service's admin": lambda gov: gov.world.admin(),
    "admin holding rules:write": lambda gov: gov.world.headers(
        "admin", "admin", "rules:write", "community:read", "audit:read"
    ),
    # issue 12: pycasbin linked the organization "steward" to the role of the same name
    "organization named steward": lambda gov: gov.world.headers("steward", "rules:write", "community:read"),
    "organization named role:steward": lambda gov: gov.world.headers("role:steward", "rules:write"),
}


def call(gov: Governance, method: str, path: str, body: Any, headers: dict[str, str]):
    return gov.client.open(path, method=method, headers=headers, json=body)


class TestOnlyTheCommunitysStewardsMayManageIt:
    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_the_steward_may(self, gov, endpoint):
        method, path, body, status = endpoints(gov)[endpoint]

        assert_ok(call(gov, method, path, body, gov.steward()), status)

    @pytest.mark.parametrize("who", OUTSIDERS.keys())
    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_anyone_else_is_forbidden_and_nothing_changes(self, gov, app, endpoint, who):
        method, path, body, _ = endpoints(gov)[endpoint]
        headers = OUTSIDERS[who](gov)

        with nothing_changes(app):
            response = call(gov, method, path, body, headers)

        assert_error(response, 403, "forbidden")

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_an_unknown_community_is_not_found(self, gov, app, endpoint):
        method, path, body, _ = endpoints(gov)[endpoint]
        headers = gov.steward()

        with nothing_changes(app):
            response = call(gov, method, path.replace(NATION_A, "nation-z"), body, headers)

        assert_error(response, 404, "not_found")

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    def test_no_token_is_unauthorized(self, gov, app, endpoint):
        method, path, body, _ = endpoints(gov)[endpoint]

        with nothing_changes(app):
            response = call(gov, method, path, body, {})

        assert_error(response, 401, "unauthorized")

    @pytest.mark.parametrize("view", ["rules", "approvals", "decisions"])
    def test_the_read_views_also_accept_community_read(self, gov, view):
        assert_ok(
            gov.client.get(
                f"/v1/communities/{NATION_A}/{view}", headers=gov.steward(NATION_A, "community:read")
            )
        )

    def test_a_council_cannot_hold_audit_read(self, gov, app):
        """audit:read is oversight of the whole deployment, not a community's view (issue 12)."""
        admin = gov.world.admin()
        with nothing_changes(app):
            response = gov.client.post(
                "/v1/clients",
                headers=admin,
                json={"organization": "nation-b-council", "name": "auditor", "scopes": ["audit:read"]},
            )
        error = assert_error(response, 400, "validation_error")
        assert "audit:read" in error["details"]["scopes"][0]


# -- what a community sees ----------------------------------------------------------------------------


class TestTheCommunitysDecisionsView:
    @pytest.fixture
    def history(self, gov) -> dict[str, Any]:
        """Three decisions about a member (one deny, two permits) and one about an outsider."""
        consent = gov.consent()
        gov.consent(subject=OUTSIDER, communities=[])
        rule = gov.rule()
        gov.ask("research", "health")
        gov.ask("service-planning", "housing")
        gov.ask("research", "housing", requester=GOVERNMENT)
        gov.ask("research", "health", subject=OUTSIDER)
        return {"consent": consent, "rule": rule}

    def test_it_lists_every_decision_that_touched_a_member_newest_first(self, gov, history):
        view = gov.decisions()

        assert view["total"] == 3
        assert [
            (d["requester"], d["purpose"], d["data_categories"], d["decision"]) for d in view["decisions"]
        ] == [
            (GOVERNMENT, "research", ["housing"], "permit"),
            (RESEARCHER, "service-planning", ["housing"], "permit"),
            (RESEARCHER, "research", ["health"], "deny"),
        ]
        denied = view["decisions"][-1]
        assert denied["reasons"] == [
            {
                "code": "community_rule",
                "message": DENY_RULE["reason"],
                "rule_id": history["rule"]["id"],
                "community": NATION_A,
            }
        ]
        assert set(denied) == {
            "id",
            "at",
            "requester",
            "purpose",
            "data_categories",
            "decision",
            "reasons",
            "obligations",
        }

    def test_it_counts_by_requester_purpose_and_outcome(self, gov, history):
        assert gov.decisions()["counts"] == {
            "by_requester": {GOVERNMENT: 1, RESEARCHER: 2},
            "by_purpose": {"research": 2, "service-planning": 1},
            "by_outcome": {"deny": 1, "permit": 2},
        }

    def test_it_never_shows_who_the_person_is(self, gov, history):
        response = gov.client.get(f"/v1/communities/{NATION_A}/decisions", headers=gov.steward())
        text = response.get_data(as_text=True)

        assert response.status_code == 200
        assert MEMBER["value"] not in text
        assert OUTSIDER["value"] not in text
        assert history["consent"]["subject_pseudonym"] not in text
        assert history["consent"]["id"] not in text
        assert "subject" not in text

    def test_the_counts_cover_the_whole_range_however_many_are_listed(self, gov, history):
        view = gov.decisions(limit=1)

        assert len(view["decisions"]) == 1
        assert view["total"] == 3
        assert view["counts"]["by_outcome"] == {"deny": 1, "permit": 2}

    def test_another_communitys_rule_is_shown_only_as_such(self, gov):
        gov.consent(communities=[NATION_A, NATION_B])
        rule_b = gov.rule(NATION_B, reason="Nation B's own wording")
        gov.ask()

        [seen_by_a] = gov.decisions(NATION_A)["decisions"]
        [seen_by_b] = gov.decisions(NATION_B)["decisions"]

        assert seen_by_a["reasons"] == [
            {"code": "community_rule", "message": "A rule of another community applies."}
        ]
        assert seen_by_b["reasons"][0]["rule_id"] == rule_b["id"]

    def test_it_filters_by_time(self, gov, monkeypatch):
        clock = Clock(monkeypatch)
        gov.consent()
        gov.ask("research", "health")
        clock.advance(timedelta(days=10))
        gov.ask("service-planning", "housing")
        gov.ask("research", "housing")
        middle = iso(clock.now() - timedelta(days=5))

        later = gov.decisions(since=middle)
        earlier = gov.decisions(until=middle)

        assert (later["total"], [d["purpose"] for d in later["decisions"]]) == (
            2,
            ["research", "service-planning"],
        )
        assert (earlier["total"], [d["purpose"] for d in earlier["decisions"]]) == (1, ["research"])
        assert later["since"] == earlier["until"]
