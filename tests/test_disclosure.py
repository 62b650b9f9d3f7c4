"""What answers disclose, and who sees what (issue 12; docs/security.md, "membership disclosure"
and "overbroad oversight").

* A requester that no consent in force of the subject names gets exactly what an unknown subject
  gets: byte-identical answers apart from ``decision_id`` and ``receipt``, single and batch
  (a property over random small worlds), and a receipt that names no rule or community.
* A requester some consent names gets the rule and its reason; the community's id only when the
  community chose to show it (a setting its stewards change, audited).
* A steward sees the community-safe view of a decision about a member, 404 otherwise.
* Admin reads but does not amend or revoke another organization's consent (403).
* Who may create a client of a steward organization; stewards list and disable their clients.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from api_helpers import CONSENT, assert_error, assert_ok, json_of, table_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet

from consent_service.storage.models import AuditEntry

ORGS = {
    "outreach-org": "service-provider",
    "gla": "government",
    "univ": "research",
    "home-office": "government",
}
REQUESTERS = ("gla", "univ", "home-office")
PURPOSES = ("research", "service-planning", "public-health")
CATEGORIES = ("health", "housing", "income", "mental-health")
EVIDENCE = CONSENT["evidence"]
COUNTER = itertools.count()


def subject(value: str) -> dict[str, str]:
    return {"system": "urn:outreach-org:client", "value": value}


def same_apart_from_ids(first: Any, second: Any) -> None:
    """Two answers' bytes are equal once their decision ids and receipts are blanked."""

    def blanked(response: Any) -> bytes:
        raw = response.get_data()
        body = json_of(response)
        answers = body.get("decisions", [body])
        for answer in answers:
            raw = raw.replace(answer["decision_id"].encode(), b"<id>")
            if "receipt" in answer:
                raw = raw.replace(answer["receipt"].encode(), b"<receipt>")
        return raw  # type: ignore[no-any-return]

    assert first.status_code == second.status_code == 200
    assert blanked(first) == blanked(second)


def claims_of(client: Any, receipt: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json())
    return jwt.decode(receipt, keys, algorithms=["ES256"]).claims  # type: ignore[no-any-return]


@pytest.fixture
def orgs(world: Any) -> Any:
    for org, kind in ORGS.items():
        world.org(org, kind)
    return world


# -- the byte-identical rule ------------------------------------------------------------------------

RULE = st.fixed_dictionaries(
    {
        "effect": st.sampled_from(["deny", "require_approval"]),
        "purposes": st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True),
        "data_categories": st.one_of(
            st.just(["*"]), st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True)
        ),
        "requesters": st.one_of(
            st.just(["*"]), st.lists(st.sampled_from(REQUESTERS), min_size=1, max_size=2, unique=True)
        ),
        "obligations": st.sampled_from([{}, {"aggregate_only": True, "min_cell_size": 3}]),
    }
)
CONSENT_TERMS = st.fixed_dictionaries(
    {
        "purposes": st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3, unique=True),
        "data_categories": st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True),
        "recipients": st.lists(st.sampled_from(REQUESTERS), min_size=1, max_size=2, unique=True),
        "revoked": st.booleans(),
    }
)
WORLD = st.fixed_dictionaries(
    {
        "communities": st.lists(
            st.fixed_dictionaries({"show": st.booleans(), "rules": st.lists(RULE, min_size=0, max_size=3)}),
            min_size=1,
            max_size=2,
        ),
        "consents": st.lists(CONSENT_TERMS, min_size=0, max_size=3),
        "approve": st.booleans(),
        "purpose": st.sampled_from(PURPOSES),
        "categories": st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True),
    }
)


def build(client: Any, world: Any, spec: dict[str, Any]) -> tuple[dict[str, str], list[str], list[str]]:
    """A member of fresh communities with the spec's consents and rules; returns the member, the
    requesters no active consent names, and the communities."""
    n = next(COUNTER)
    council = world.org(f"council-{n}", "community-governance")
    steward = world.headers(council, "rules:write")
    communities = []
    for index, community in enumerate(spec["communities"]):
        cid = f"nation-{n}-{index}"
        assert_ok(
            client.post(
                "/v1/communities",
                headers=world.admin(),
                json={"id": cid, "name": cid, "stewards": [council], "show_community_id": community["show"]},
            ),
            201,
        )
        made = set()
        for rule in community["rules"]:
            # The API refuses obligations on a deny rule (they would never travel) and a second
            # rule with the same terms as one in force (409 duplicate_rule).
            rule = {**rule, "obligations": {} if rule["effect"] == "deny" else rule["obligations"]}
            terms = tuple(frozenset(rule[k]) for k in ("purposes", "data_categories", "requesters"))
            if (rule["effect"], *terms) in made:
                continue
            made.add((rule["effect"], *terms))
            assert_ok(
                client.post(
                    f"/v1/communities/{cid}/rules",
                    headers=steward,
                    json={**rule, "reason": f"rule text of {cid}"},
                ),
                201,
            )
        if spec["approve"]:
            for requester in REQUESTERS:
                assert_ok(
                    client.post(
                        f"/v1/communities/{cid}/approvals",
                        headers=steward,
                        json={
                            "requester": requester,
                            "purposes": list(PURPOSES),
                            "data_categories": list(CATEGORIES),
                        },
                    ),
                    201,
                )
        communities.append(cid)
    member = subject(f"M-{n}")
    writer = world.headers("outreach-org", "consents:write")
    # membership is recorded by a consent that names only outreach-org, then revoked
    first = assert_ok(
        client.post(
            "/v1/consents",
            headers=writer,
            json={
                "subject": member,
                "communities": communities,
                "purposes": ["service-delivery"],
                "data_categories": ["housing"],
                "recipients": ["outreach-org"],
                "evidence": EVIDENCE,
            },
        ),
        201,
    )
    assert_ok(client.post(f"/v1/consents/{first['id']}/revoke", headers=writer, json={"reason": "asked"}))
    named: set[str] = set()
    for terms in spec["consents"]:
        made = assert_ok(
            client.post(
                "/v1/consents",
                headers=writer,
                json={
                    "subject": member,
                    "purposes": terms["purposes"],
                    "data_categories": terms["data_categories"],
                    "recipients": terms["recipients"],
                    "evidence": EVIDENCE,
                },
            ),
            201,
        )
        if terms["revoked"]:
            assert_ok(client.post(f"/v1/consents/{made['id']}/revoke", headers=writer, json={}))
        else:
            named |= set(terms["recipients"])
    return member, [r for r in REQUESTERS if r not in named], communities


class TestARequesterNoConsentNamesLearnsNothing:
    def test_single_and_batch_answers_equal_the_unknown_subjects(self, client, orgs):
        world = orgs
        tokens = {r: world.headers(r, "authorize") for r in REQUESTERS}

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(spec=WORLD)
        def check(spec: dict[str, Any]) -> None:
            member, strangers, communities = build(client, world, spec)
            unknown = subject(f"nobody-{next(COUNTER)}")
            request = {"purpose": spec["purpose"], "data_categories": spec["categories"]}
            for requester in strangers:
                headers = tokens[requester]
                about_member = client.post(
                    "/v1/authorize", headers=headers, json={"subject": member, **request}
                )
                about_nobody = client.post(
                    "/v1/authorize", headers=headers, json={"subject": unknown, **request}
                )
                same_apart_from_ids(about_member, about_nobody)
                claims = claims_of(client, json_of(about_member)["receipt"])
                assert claims["rule_ids"] == [] and claims["policy_versions"] == {}
                assert not any(cid in json.dumps(claims) for cid in communities)

                batch_member = client.post(
                    "/v1/authorize/batch", headers=headers, json={"subjects": [member], **request}
                )
                batch_nobody = client.post(
                    "/v1/authorize/batch", headers=headers, json={"subjects": [unknown], **request}
                )
                same_apart_from_ids(batch_member, batch_nobody)

        check()

    def test_a_deny_rule_is_invisible_to_a_requester_without_consent(self, client, orgs):
        """Issue 12 finding 2, as an attacker replays it: research on a member, no consent at all."""
        member, strangers, communities = build(
            client,
            orgs,
            {
                "communities": [
                    {
                        "show": True,
                        "rules": [
                            {
                                "effect": "deny",
                                "purposes": ["research"],
                                "data_categories": ["*"],
                                "requesters": ["*"],
                                "obligations": {},
                            }
                        ],
                    }
                ],
                "consents": [
                    {
                        "purposes": ["research"],
                        "data_categories": ["health"],
                        "recipients": ["gla"],
                        "revoked": False,
                    }
                ],
                "approve": False,
                "purpose": "research",
                "categories": ["health"],
            },
        )
        assert "univ" in strangers
        answer = assert_ok(
            client.post(
                "/v1/authorize",
                headers=orgs.headers("univ", "authorize"),
                json={"subject": member, "purpose": "research", "data_categories": ["health"]},
            )
        )
        assert answer["decision"] == "deny"
        assert answer["reasons"] == [
            {"code": "no_consent", "message": "No active consent lets univ use health for research."}
        ]
        # the requester a consent names is told the rule (and, as this community chose, its id)
        named = assert_ok(
            client.post(
                "/v1/authorize",
                headers=orgs.headers("gla", "authorize"),
                json={"subject": member, "purpose": "research", "data_categories": ["health"]},
            )
        )
        assert [(r["code"], r.get("community")) for r in named["reasons"]] == [
            ("community_rule", communities[0])
        ]


# -- a named requester: the rule, and the community's id only by its choice --------------------------


@pytest.fixture
def member_world(client, orgs) -> dict[str, Any]:
    """A member of nation-a (default: id not shown) whose consent names univ, a require_approval
    rule with an obligation, and a deny rule of nation-b (another community of the member)."""
    world = orgs
    world.org("nation-a-council", "community-governance")
    world.org("nation-b-council", "community-governance")
    for cid, council in (("nation-a", "nation-a-council"), ("nation-b", "nation-b-council")):
        assert_ok(
            client.post(
                "/v1/communities", headers=world.admin(), json={"id": cid, "name": cid, "stewards": [council]}
            ),
            201,
        )
    member = subject("C-7")
    writer = world.headers("outreach-org", "consents:write")
    consent = assert_ok(
        client.post(
            "/v1/consents",
            headers=writer,
            json={
                "subject": member,
                "communities": ["nation-a", "nation-b"],
                "purposes": ["research", "service-planning"],
                "data_categories": ["health", "housing"],
                "recipients": ["univ", "gla"],
                "evidence": EVIDENCE,
            },
        ),
        201,
    )
    steward = world.headers("nation-a-council", "rules:write")
    rule = assert_ok(
        client.post(
            "/v1/communities/nation-a/rules",
            headers=steward,
            json={
                "effect": "require_approval",
                "purposes": ["research"],
                "data_categories": ["health"],
                "requesters": ["*"],
                "obligations": {"aggregate_only": True, "min_cell_size": 2},
                "reason": "ask the council",
            },
        ),
        201,
    )
    b_rule = assert_ok(
        client.post(
            "/v1/communities/nation-b/rules",
            headers=world.headers("nation-b-council", "rules:write"),
            json={
                "effect": "deny",
                "purposes": ["service-planning"],
                "data_categories": ["housing"],
                "requesters": ["*"],
                "reason": "nation b says no",
            },
        ),
        201,
    )
    return {"member": member, "consent": consent, "rule": rule, "b_rule": b_rule, "steward": steward}


def ask(
    client: Any, world: Any, requester: str, member: dict[str, str], purpose: str, *categories: str
) -> dict[str, Any]:
    return assert_ok(
        client.post(
            "/v1/authorize",
            headers=world.headers(requester, "authorize"),
            json={"subject": member, "purpose": purpose, "data_categories": list(categories)},
        )
    )


class TestANamedRequester:
    def test_gets_the_rule_and_its_reason_but_not_the_community_by_default(self, client, orgs, member_world):
        answer = ask(client, orgs, "univ", member_world["member"], "research", "health")
        assert answer["reasons"] == [
            {
                "code": "approval_required",
                "rule_id": member_world["rule"]["id"],
                "message": "The community must approve this use first: ask the council",
            }
        ]
        assert "nation-a" not in json.dumps(answer)
        assert "nation-a" not in json.dumps(claims_of(client, answer["receipt"]))

    def test_the_community_shows_its_id_once_its_stewards_say_so(self, app, client, orgs, member_world):
        before = table_counts(app)["audit_entry"]
        changed = assert_ok(
            client.patch(
                "/v1/communities/nation-a", headers=member_world["steward"], json={"show_community_id": True}
            )
        )
        assert changed["show_community_id"] is True
        assert table_counts(app)["audit_entry"] == before + 1
        with orgs.services.sessions() as session:
            entry = session.query(AuditEntry).order_by(AuditEntry.seq.desc()).first()
            said = {k: v for k, v in entry.payload.items() if k != "rows"}  # rows: the chain's binding
            assert (entry.tag, entry.object_id, said) == (
                "community:changed",
                "nation-a",
                {"show_community_id": True, "was": False},
            )

        answer = ask(client, orgs, "univ", member_world["member"], "research", "health")  # the very next call
        assert [r.get("community") for r in answer["reasons"]] == ["nation-a"]
        # nation-b did not choose so: its rule is told without its id
        denied = ask(client, orgs, "gla", member_world["member"], "service-planning", "housing")
        assert [(r["code"], r["rule_id"], r.get("community")) for r in denied["reasons"]] == [
            ("community_rule", member_world["b_rule"]["id"], None)
        ]

    def test_permit_obligations_carry_the_community_only_when_shown(self, client, orgs, member_world):
        assert_ok(
            client.post(
                "/v1/communities/nation-a/approvals",
                headers=member_world["steward"],
                json={"requester": "univ", "purposes": ["research"], "data_categories": ["health"]},
            ),
            201,
        )
        hidden = ask(client, orgs, "univ", member_world["member"], "research", "health")
        assert hidden["decision"] == "permit"
        # the rule's obligation first, then the deployment's own (which name no community)
        assert [o["code"] for o in hidden["obligations"]] == [
            "aggregate_only",
            "no_onward_disclosure",
            "purpose_limited",
        ]
        assert not any("community" in o for o in hidden["obligations"])
        assert_ok(
            client.patch(
                "/v1/communities/nation-a", headers=member_world["steward"], json={"show_community_id": True}
            )
        )
        shown = ask(client, orgs, "univ", member_world["member"], "research", "health")
        assert shown["obligations"][0]["community"] == "nation-a"

    def test_only_a_steward_with_rules_write_changes_the_setting(self, app, client, orgs, member_world):
        others = [
            orgs.headers("nation-b-council", "rules:write"),
            orgs.headers("nation-a-council", "community:read"),
            orgs.admin(),
        ]
        before = table_counts(app)
        for headers in others:
            assert_error(
                client.patch("/v1/communities/nation-a", headers=headers, json={"show_community_id": True}),
                403,
                "forbidden",
            )
        error = assert_error(
            client.patch(
                "/v1/communities/nation-a",
                headers=member_world["steward"],
                json={"show_community_id": "sometimes"},
            ),
            400,
            "validation_error",
        )
        assert "show_community_id" in error["details"]
        assert table_counts(app) == before


# -- who sees a decision ----------------------------------------------------------------------------


class TestAStewardSeesTheCommunitySafeView:
    def test_a_decision_about_a_member(self, client, orgs, member_world):
        answer = ask(client, orgs, "gla", member_world["member"], "service-planning", "housing")
        path = f"/v1/decisions/{answer['decision_id']}"
        for scopes in (("community:read",), ("rules:write",)):
            seen = assert_ok(client.get(path, headers=orgs.headers("nation-a-council", *scopes)))
            assert seen["community"] == "nation-a" and seen["decision"] == "deny"
            text = json.dumps(seen)
            assert "subject_pseudonym" not in seen and "consent_id" not in text
            # another community's rule: its code only
            assert member_world["b_rule"]["id"] not in text and "nation b says no" not in text
            assert seen["reasons"] == [
                {"code": "community_rule", "message": "A rule of another community applies."}
            ]
        # nation-b's steward sees its own rule
        theirs = assert_ok(client.get(path, headers=orgs.headers("nation-b-council", "community:read")))
        assert theirs["reasons"][0]["rule_id"] == member_world["b_rule"]["id"]

    def test_a_decision_about_anyone_else_is_not_found(self, client, orgs, member_world):
        answer = ask(client, orgs, "gla", subject("not-a-member"), "service-planning", "housing")
        steward = orgs.headers("nation-a-council", "community:read")
        response = client.get(f"/v1/decisions/{answer['decision_id']}", headers=steward)
        missing = client.get("/v1/decisions/00000000-0000-0000-0000-000000000000", headers=steward)
        assert_error(response, 404, "not_found")
        assert response.get_data() == missing.get_data()


class TestAdminReadsButDoesNotChange:
    @pytest.mark.parametrize("action", ["amend", "revoke"])
    def test_another_organizations_consent(self, app, client, orgs, member_world, action):
        consent = member_world["consent"]
        admin = orgs.headers("admin", "admin", "consents:write", "consents:read")
        assert assert_ok(client.get(f"/v1/consents/{consent['id']}", headers=admin))["id"] == consent["id"]
        body = (
            {"reason": "admin says"}
            if action == "revoke"
            else {
                "purposes": ["research"],
                "data_categories": ["health"],
                "recipients": ["univ"],
                "evidence": EVIDENCE,
                "version": 1,
            }
        )
        before = table_counts(app)
        assert_error(
            client.post(f"/v1/consents/{consent['id']}/{action}", headers=admin, json=body), 403, "forbidden"
        )
        assert table_counts(app) == before


# -- who creates a steward organization's clients -----------------------------------------------------


class TestStewardClients:
    @pytest.fixture
    def council(self, client, world) -> str:
        world.org("council-x", "community-governance")
        world.org("outreach-org", "service-provider")
        assert_ok(
            client.post(
                "/v1/communities",
                headers=world.admin(),
                json={"id": "nation-x", "name": "X", "stewards": ["council-x"]},
            ),
            201,
        )
        return "council-x"

    def new_client(self, client, headers, org, *scopes):
        return client.post(
            "/v1/clients",
            headers=headers,
            json={"organization": org, "name": "made", "scopes": list(scopes or ("rules:write",))},
        )

    def test_admin_makes_only_the_first_then_the_steward_makes_its_own(self, app, client, world, council):
        admin = world.admin()
        first = assert_ok(self.new_client(client, admin, council, "rules:write", "community:read"), 201)
        before = table_counts(app)
        error = assert_error(self.new_client(client, admin, council), 403, "forbidden")
        assert "own clients" in error["message"]
        assert table_counts(app) == before
        token = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(first["client_id"], first["client_secret"]),
        ).get_json()["access_token"]
        own = {"Authorization": f"Bearer {token}"}
        made = assert_ok(self.new_client(client, own, council, "community:read"), 201)
        assert made["organization"] == council and made["scopes"] == ["community:read"]
        before = table_counts(app)
        assert_error(self.new_client(client, own, "outreach-org", "authorize"), 403, "forbidden")
        assert_error(self.new_client(client, own, council, "admin"), 403, "forbidden")
        assert_error(self.new_client(client, own, council, "audit:read"), 400, "validation_error")
        assert table_counts(app) == before

        listed = assert_ok(client.get("/v1/communities/nation-x/clients", headers=own))
        assert {c["client_id"] for c in listed["clients"]} == {first["client_id"], made["client_id"]}
        assert all("client_secret" not in c for c in listed["clients"])
        disabled = assert_ok(
            client.post(f"/v1/communities/nation-x/clients/{made['client_id']}/disable", headers=own)
        )
        assert disabled["disabled_at"] is not None

    def test_a_steward_cannot_disable_a_client_of_another_organization(self, app, client, world, council):
        steward = world.headers(council, "rules:write")
        outsider = world.headers("outreach-org", "rules:write")
        stranger, _ = world.credentials("outreach-org", "authorize")
        mine, _ = world.credentials(council, "community:read")
        before = table_counts(app)
        assert_error(
            client.post(f"/v1/communities/nation-x/clients/{stranger}/disable", headers=steward),
            404,
            "not_found",
        )
        assert_error(
            client.post(f"/v1/communities/nation-x/clients/{mine}/disable", headers=outsider),
            403,
            "forbidden",
        )
        assert table_counts(app) == before

    def test_a_rules_write_client_of_no_steward_creates_nothing(self, app, client, world, council):
        headers = world.headers("outreach-org", "rules:write")
        before = table_counts(app)
        assert_error(self.new_client(client, headers, "outreach-org", "authorize"), 403, "forbidden")
        assert table_counts(app) == before


class TestOversight:
    def test_audit_read_only_for_admin_or_an_oversight_organization(self, app, client, world):
        admin = world.admin()
        assert_ok(
            client.post(
                "/v1/organizations",
                headers=admin,
                json={"id": "watchdog", "name": "Watchdog", "type": "oversight"},
            ),
            201,
        )
        world.org("gla", "government")
        made = assert_ok(
            client.post(
                "/v1/clients",
                headers=admin,
                json={"organization": "watchdog", "name": "audit", "scopes": ["audit:read"]},
            ),
            201,
        )
        assert made["scopes"] == ["audit:read"]
        before = table_counts(app)
        error = assert_error(
            client.post(
                "/v1/clients",
                headers=admin,
                json={"organization": "gla", "name": "audit", "scopes": ["audit:read", "authorize"]},
            ),
            400,
            "validation_error",
        )
        assert "audit:read" in error["details"]["scopes"][0]
        assert table_counts(app) == before

    def test_a_person_of_another_organization_cannot_be_given_audit_read(self, app, world):
        from datetime import UTC, datetime

        from consent_service.errors import ValidationFailed
        from consent_service.services import users

        world.org("gla", "government")
        before = table_counts(app)
        with pytest.raises(ValidationFailed) as refused:
            users.create_user(
                world.services,
                caller=None,
                email="a@gla.example",
                name="A",
                organization="gla",
                roles=["audit:read"],
                password="a long enough password",
                language="en",
                now=datetime.now(UTC),
            )
        assert "audit:read" in refused.value.details["roles"][0]
        assert table_counts(app) == before
