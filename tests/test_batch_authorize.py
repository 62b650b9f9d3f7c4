"""POST /v1/authorize/batch: a cohort decided exactly as single authorize decides each subject.

The world below is built through the API (consents, communities) and, for rules and
approvals, through storage with the community's policy version bumped in the same
transaction (as the rule API does). Random requests over random cohorts (repeats included)
are then asked both ways and must agree decision for decision, reason for reason; where the
cohort gate applies, the expectation is derived from the single answers too.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import CONSENT as BASE_CONSENT
from api_helpers import (
    DEFAULT_OBLIGATIONS,
    assert_error,
    assert_ok,
    engine_of,
    record_consent,
    table_counts,
)
from conftest import Seed, Snapshot, seeded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from consent_service.container import EXTENSION
from consent_service.errors import Unavailable
from consent_service.schemas.authorize import BatchDecisionsOut
from consent_service.services import audit as audit_log
from consent_service.services import audit_rows as audit_rows_service
from consent_service.services import authorize as cases
from consent_service.storage import audit_rows
from consent_service.storage import communities as community_store
from consent_service.storage.db import write
from consent_service.storage.models import (
    Approval,
    AuditEntry,
    CommunityRule,
    ConsentVersion,
    Decision,
    DecisionCommunity,
)

BATCH = "/v1/authorize/batch"
ORGS = {
    "univ": "research",
    "gla": "government",
    "outreach-org": "service-provider",
    "nation-a-council": "community-governance",
}
COMMUNITIES = ("nation-a", "nation-b", "nation-c")


def subject(n: int) -> dict[str, str]:
    return {"system": "urn:outreach-org:client", "value": f"S-{n}"}


def add_rule(
    app: Any,
    community: str,
    effect: str,
    purposes: list[str],
    categories: list[str],
    *,
    requesters: tuple[str, ...] = ("*",),
    obligations: dict[str, Any] | None = None,
) -> str:
    services = app.extensions[EXTENSION]
    rule_id = str(uuid.uuid4())
    with write(services.sessions) as session:
        community_store.add(
            session,
            CommunityRule(
                id=rule_id,
                community_id=community,
                effect=effect,
                purposes=purposes,
                data_categories=categories,
                requesters=list(requesters),
                obligations=obligations or {},
                labels=[],
                reason=f"{effect} rule",
                created_at=datetime.now(UTC),
                created_by="nation-a-council",
                created_by_client="test",
            ),
        )
        community_store.bump_policy_version(session, community)
        # recorded as the service records a change, so the chain binds these rows
        services.append_audit(
            session, at=datetime.now(UTC), tag="rule:created", caller=None, object_id=rule_id, payload={}
        )
        session.commit()
    return rule_id


def add_approval(
    app: Any, community: str, requester: str, purposes: list[str], categories: list[str]
) -> None:
    services = app.extensions[EXTENSION]
    with write(services.sessions) as session:
        community_store.add(
            session,
            Approval(
                id=str(uuid.uuid4()),
                community_id=community,
                requester=requester,
                purposes=purposes,
                data_categories=categories,
                created_at=datetime.now(UTC),
                created_by="nation-a-council",
                created_by_client="test",
            ),
        )
        community_store.bump_policy_version(session, community)
        services.append_audit(
            session, at=datetime.now(UTC), tag="approval:granted", caller=None, object_id=None, payload={}
        )
        session.commit()


def make_communities(client: Any, world: Any) -> None:
    for org, kind in ORGS.items():
        world.org(org, kind)
    for community in COMMUNITIES:
        assert_ok(
            client.post(
                "/v1/communities",
                headers=world.admin(),
                json={
                    "id": community,
                    "name": community.title(),
                    "stewards": ["nation-a-council"],
                    # shown, so answers can be compared community by community (the hidden default and
                    # who may see what: tests/test_disclosure.py)
                    "show_community_id": True,
                },
            ),
            201,
        )


def consent(client: Any, world: Any, n: int, **terms: Any) -> dict[str, Any]:
    headers = world.headers("outreach-org", "consents:write")
    return record_consent(client, headers, subject=subject(n), **terms)


@pytest.fixture(scope="module")
def cohort_seeds(request, database_backend) -> Iterator[Callable[[], Seed]]:
    """The cohort world, built once for the module and backend (conftest.seeded)."""
    with seeded(request, database_backend, "cohort", lambda w: build_cohort(w.app, w.client, w)) as current:
        yield current


@pytest.fixture
def cohort_seed(cohort_seeds) -> Seed:
    return cohort_seeds()


@pytest.fixture
def database_start(request) -> Snapshot | None:
    """The tests of the cohort world start from a copy of its database; the others from none."""
    return request.getfixturevalue("cohort_seed").snapshot if "cohort_world" in request.fixturenames else None


@pytest.fixture
def cohort_world(world, cohort_seed) -> dict[str, Any]:
    """The cohort world (a copy of the one built for the module): its tokens, its rules' ids."""
    world.adopt(cohort_seed.tokens)
    return dict(cohort_seed.built)


def build_cohort(app: Any, client: Any, world: Any) -> dict[str, Any]:
    """Twelve subjects whose consents, memberships and communities reach every step of the engine."""
    make_communities(client, world)
    research = {"purposes": ["research"], "recipients": ["univ"]}
    consent(client, world, 1, data_categories=["health"], communities=["nation-a"], **research)
    consent(
        client,
        world,
        2,
        data_categories=["health", "demographic"],
        communities=["nation-a", "nation-c"],
        **research,
    )
    consent(client, world, 3, communities=["nation-b"])  # the contract's example terms
    revoked = consent(client, world, 4, communities=["nation-b"])
    assert_ok(
        client.post(
            f"/v1/consents/{revoked['id']}/revoke",
            json={"reason": "asked"},
            headers=world.headers("outreach-org", "consents:write"),
        )
    )
    expired = consent(client, world, 5, data_categories=["health"], **research)
    services = app.extensions[EXTENSION]
    with write(services.sessions) as session:
        audit_rows.changing(session, ConsentVersion, expired["id"], 1)
        session.execute(
            update(ConsentVersion)
            .where(ConsentVersion.consent_id == expired["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(days=1))
        )
        # an expiry moved into the past, recorded as a change so that the chain still binds the row
        services.append_audit(
            session,
            at=datetime.now(UTC),
            tag="consent:amended",
            caller=None,
            object_id=expired["id"],
            payload={},
        )
        session.commit()
    amended = consent(client, world, 6, data_categories=["income"], communities=["nation-c"], **research)
    amend = {k: v for k, v in BASE_CONSENT.items() if k != "subject"} | {
        "purposes": ["research"],
        "data_categories": ["health", "income"],
        "recipients": ["univ", "gla"],
        "communities": ["nation-c"],
        "version": 1,
    }
    assert_ok(
        client.post(
            f"/v1/consents/{amended['id']}/amend",
            json=amend,
            headers=world.headers("outreach-org", "consents:write"),
        )
    )
    consent(
        client,
        world,
        7,
        purposes=["research", "public-health"],
        data_categories=["mental-health"],
        recipients=["univ", "gla"],
    )
    consent(
        client,
        world,
        7,
        purposes=["public-health"],
        data_categories=["health", "housing"],
        recipients=["gla"],
        communities=["nation-b"],
    )
    gone = consent(client, world, 8, data_categories=["demographic"], communities=["nation-a"], **research)
    assert_ok(
        client.post(
            f"/v1/consents/{gone['id']}/revoke",
            json={"reason": "asked"},
            headers=world.headers("outreach-org", "consents:write"),
        )
    )
    # subject 8 is still nation-a's member
    consent(client, world, 8, data_categories=["health", "demographic"], **research)
    consent(
        client,
        world,
        9,
        purposes=["service-delivery"],
        data_categories=["identity", "housing"],
        recipients=["outreach-org", "gla", "univ"],
    )
    consent(
        client,
        world,
        10,
        purposes=["research", "service-planning"],
        data_categories=["health", "income"],
        recipients=["univ", "gla"],
        communities=["nation-a", "nation-b", "nation-c"],
    )
    consent(
        client,
        world,
        11,
        purposes=["service-planning"],
        data_categories=["housing", "income"],
        recipients=["gla"],
        communities=["nation-b", "nation-c"],
    )
    consent(client, world, 12, data_categories=["demographic"], communities=["nation-c"], **research)
    # subject 0 has nothing on file.

    rules = {
        # indigenous-identity stands alone (sensitive): the rule names demographic too to deny it
        "a-deny": add_rule(app, "nation-a", "deny", ["research"], ["indigenous-identity", "demographic"]),
        "a-approval": add_rule(
            app,
            "nation-a",
            "require_approval",
            ["research"],
            ["health"],
            obligations={"aggregate_only": True, "min_cell_size": 2},
        ),
        "b-approval": add_rule(
            app, "nation-b", "require_approval", ["service-planning"], ["*"], requesters=("gla",)
        ),
        "b-deny": add_rule(app, "nation-b", "deny", ["commercial", "public-health"], ["housing"]),
        "c-approval": add_rule(
            app,
            "nation-c",
            "require_approval",
            ["research"],
            ["demographic"],
            obligations={"aggregate_only": True, "min_cell_size": 4, "no_linkage": True},
        ),
        "c-income": add_rule(
            app,
            "nation-c",
            "require_approval",
            ["research", "service-planning"],
            ["income"],
            obligations={"retention_days": 30},
        ),
    }
    add_approval(app, "nation-a", "univ", ["research"], ["health"])
    add_approval(app, "nation-b", "gla", ["service-planning"], ["housing"])
    add_approval(app, "nation-c", "univ", ["research"], ["demographic", "income"])
    add_approval(app, "nation-c", "gla", ["service-planning"], ["income"])
    return rules


def single(
    client: Any, headers: dict[str, str], n: int, purpose: str, categories: list[str]
) -> dict[str, Any]:
    return assert_ok(
        client.post(
            "/v1/authorize",
            headers=headers,
            json={"subject": subject(n), "purpose": purpose, "data_categories": categories},
        )
    )


def batch(
    client: Any, headers: dict[str, str], subjects: list[int], purpose: str, categories: list[str]
) -> dict[str, Any]:
    return assert_ok(
        client.post(
            BATCH,
            headers=headers,
            json={
                "subjects": [subject(n) for n in subjects],
                "purpose": purpose,
                "data_categories": categories,
            },
        )
    )


def batch_id_of(app: Any, answer: dict[str, Any]) -> str:
    """The batch an answer's decisions were recorded in (their rows' ``batch_id``)."""
    with app.extensions[EXTENSION].sessions() as session:
        row = session.get(Decision, answer["decisions"][0]["decision_id"])
        assert row is not None and row.batch_id is not None
        return row.batch_id


def comparable(answer: dict[str, Any]) -> tuple[Any, ...]:
    """Everything but the decision id and the wording of messages."""
    return (
        answer["decision"],
        [(r["code"], r.get("consent_id"), r.get("rule_id"), r.get("community")) for r in answer["reasons"]],
        answer["obligations"],
    )


def expected_from_singles(singles: dict[int, dict[str, Any]], subjects: list[int]) -> list[tuple[Any, ...]]:
    """The cohort's answers as the contract derives them from the single answers: a min_cell_size
    rule is judged on the distinct subjects it matched and would release (its community's members
    in the cohort); only they are denied when too few, everyone else keeps its single answer. The
    deployment policy's gate for a sensitive category (no community) is judged the same way on
    the permits that carry it."""
    cells: dict[tuple[str | None, str], set[int]] = {}
    sizes: dict[tuple[str | None, str], int] = {}
    for n in set(subjects):
        if singles[n]["decision"] != "permit":
            continue
        for o in singles[n]["obligations"]:
            if o["code"] == "aggregate_only" and "min_cell_size" in o:
                key = (o.get("community"), o.get("rule_id") or o.get("category"))
                cells.setdefault(key, set()).add(n)
                sizes[key] = max(sizes.get(key, 0), o["min_cell_size"])
    failing = {key for key, size in sizes.items() if len(cells[key]) < size}
    out = []
    for n in subjects:
        mine = sorted((key for key in failing if n in cells[key]), key=lambda k: (k[0] or "", k[1]))
        out.append(
            (
                "deny",
                [
                    ("below_min_cell_size", None, rule if community else None, community)
                    for community, rule in mine
                ],
                [],
            )
            if mine
            else comparable(singles[n])
        )
    return out


PURPOSES = [
    "research",
    "public-health",
    "service-planning",
    "service-delivery",
    "care-coordination",
    "commercial",
]
CATEGORIES = ["health", "mental-health", "demographic", "nationality", "housing", "income", "identity"]

# Requests that reach each step of the engine in the world above.
REQUESTS = [
    ("univ", "research", ["health"]),
    ("univ", "research", ["mental-health"]),
    ("univ", "research", ["demographic"]),
    ("univ", "research", ["health", "income"]),
    ("gla", "service-planning", ["housing"]),
    ("gla", "service-planning", ["income"]),
    ("gla", "public-health", ["housing"]),
    ("outreach-org", "service-delivery", ["nationality"]),
]


class TestSameAsSingleAuthorize:
    def test_random_cohorts_and_requests_agree_with_single_authorize(self, app, client, world, cohort_world):
        headers = {org: world.headers(org, "authorize") for org in ("univ", "gla", "outreach-org")}

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            asked=st.one_of(
                st.sampled_from(REQUESTS),
                st.tuples(
                    st.sampled_from(sorted(headers)),
                    st.sampled_from(PURPOSES),
                    st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True),
                ),
            ),
            subjects=st.lists(st.integers(0, 12), min_size=1, max_size=20),
        )
        def check(asked: tuple[str, str, list[str]], subjects: list[int]) -> None:
            requester, purpose, categories = asked
            singles = {n: single(client, headers[requester], n, purpose, categories) for n in set(subjects)}
            answer = batch(client, headers[requester], subjects, purpose, categories)
            assert [d["subject_index"] for d in answer["decisions"]] == list(range(len(subjects)))
            assert [comparable(d) for d in answer["decisions"]] == expected_from_singles(singles, subjects)
            permits = sum(d["decision"] == "permit" for d in answer["decisions"])
            assert answer["summary"] == {"permit": permits, "deny": len(subjects) - permits}

        check()

    def test_every_subject_of_the_world_for_each_kind_of_request(self, client, world, cohort_world):
        seen: set[str] = set()
        for requester, purpose, categories in REQUESTS:
            headers = world.headers(requester, "authorize")
            subjects = list(range(13)) * 2
            singles = {n: single(client, headers, n, purpose, categories) for n in range(13)}
            answer = batch(client, headers, subjects, purpose, categories)
            assert [comparable(d) for d in answer["decisions"]] == expected_from_singles(singles, subjects)
            seen.update(r["code"] for d in answer["decisions"] for r in d["reasons"])
        # the world reaches every reason code, else agreement proves less than it claims
        assert seen == {"consent", "no_consent", "community_rule", "approval_required", "below_min_cell_size"}

    def test_a_rule_change_is_seen_by_the_next_batch(self, app, client, world, cohort_world):
        headers = world.headers("univ", "authorize")
        assert batch(client, headers, [1, 2], "research", ["health"])["summary"] == {"permit": 2, "deny": 0}
        rule = add_rule(app, "nation-a", "deny", ["research"], ["health"])
        answer = batch(client, headers, [1, 2], "research", ["health"])
        assert answer["summary"] == {"permit": 0, "deny": 2}
        assert {r["rule_id"] for d in answer["decisions"] for r in d["reasons"]} == {rule}

    def test_the_answer_is_what_the_batch_schema_dumps(self, client, world, cohort_world, monkeypatch):
        """The view builds the answer without the nested schemas (``schemas.authorize.batch_answer``):
        for every kind of request over the whole world it is exactly ``BatchDecisionsOut``'s dump."""
        results: list[Any] = []
        decide = cases.authorize_batch

        def kept(*args: Any, **kwargs: Any) -> Any:
            results.append(decide(*args, **kwargs))
            return results[-1]

        monkeypatch.setattr(cases, "authorize_batch", kept)
        for requester, purpose, categories in REQUESTS:
            answer = batch(
                client, world.headers(requester, "authorize"), list(range(13)) * 2, purpose, categories
            )
            assert answer == json.loads(json.dumps(BatchDecisionsOut().dump(results[-1])))

    def test_the_garbage_collector_is_paused_for_the_batch_only(
        self, client, world, cohort_world, monkeypatch
    ):
        seen: list[bool] = []
        decide = cases.authorize_batch

        def watched(*args: Any, **kwargs: Any) -> Any:
            seen.append(gc.isenabled())
            return decide(*args, **kwargs)

        monkeypatch.setattr(cases, "authorize_batch", watched)
        assert gc.isenabled()
        batch(client, world.headers("univ", "authorize"), [1, 2], "research", ["health"])
        assert seen == [False] and gc.isenabled()

        def failing(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable("The decisions could not be made; treat every subject as denied.")

        monkeypatch.setattr(cases, "authorize_batch", failing)
        assert_error(
            client.post(
                BATCH,
                headers=world.headers("univ", "authorize"),
                json={"subjects": [subject(1)], "purpose": "research", "data_categories": ["health"]},
            ),
            503,
            "unavailable",
        )
        assert gc.isenabled()


class TestMinCellSize:
    """nation-a's approval rule: aggregate_only, min_cell_size 2 (nation-c's: 4)."""

    def test_too_few_matched_members_are_denied_and_no_one_else(self, client, world, cohort_world):
        answer = batch(client, world.headers("univ", "authorize"), [1, 0, 12], "research", ["health"])
        assert answer["summary"] == {"permit": 0, "deny": 3}
        member = answer["decisions"][0]
        assert member["obligations"] == []
        assert [(r["code"], r["rule_id"], r["community"]) for r in member["reasons"]] == [
            ("below_min_cell_size", cohort_world["a-approval"], "nation-a")
        ]
        # subjects 0 and 12 are no members of nation-a: their own answers, no word of the cell
        assert [[r["code"] for r in d["reasons"]] for d in answer["decisions"][1:]] == [["no_consent"]] * 2

    def test_padding_with_non_members_releases_no_member(self, client, world, cohort_world):
        """Issue 12 finding 5: one member plus four non-members was five permits."""
        for n in range(20, 24):
            consent(client, world, n, purposes=["research"], data_categories=["health"], recipients=["univ"])
        univ = world.headers("univ", "authorize")
        answer = batch(client, univ, [1, 20, 21, 22, 23], "research", ["health"])
        decisions = answer["decisions"]
        assert [d["decision"] for d in decisions] == ["deny", "permit", "permit", "permit", "permit"]
        assert [r["code"] for r in decisions[0]["reasons"]] == ["below_min_cell_size"]
        # non-members carry no community's rule: only the deployment's own obligations
        assert all(d["obligations"] == DEFAULT_OBLIGATIONS for d in decisions[1:])
        # a second member makes the cell: both are released, with the obligation
        both = batch(client, world.headers("univ", "authorize"), [1, 20, 2], "research", ["health"])
        assert [d["decision"] for d in both["decisions"]] == ["permit"] * 3

    def test_enough_permitted_subjects_are_released_with_the_obligation(self, client, world, cohort_world):
        answer = batch(client, world.headers("univ", "authorize"), [1, 2, 0], "research", ["health"])
        assert [d["decision"] for d in answer["decisions"]] == ["permit", "permit", "deny"]
        assert answer["decisions"][0]["obligations"] == [
            {
                "code": "aggregate_only",
                "min_cell_size": 2,
                "rule_id": cohort_world["a-approval"],
                "community": "nation-a",
            },
            *DEFAULT_OBLIGATIONS,
        ]

    def test_a_repeated_subject_counts_once(self, client, world, cohort_world):
        answer = batch(client, world.headers("univ", "authorize"), [1, 1, 1], "research", ["health"])
        assert answer["summary"] == {"permit": 0, "deny": 3}
        assert {d["reasons"][0]["code"] for d in answer["decisions"]} == {"below_min_cell_size"}

    def test_single_authorize_has_no_cohort_and_returns_the_obligation(self, client, world, cohort_world):
        answer = single(client, world.headers("univ", "authorize"), 1, "research", ["health"])
        assert answer["decision"] == "permit"
        assert answer["obligations"][0]["min_cell_size"] == 2

    def test_the_threshold_of_another_community(self, client, world, cohort_world):
        # demographic research: nation-c asks for 4 and only subject 12 would be permitted
        # (2 and 8 are nation-a's members, which denies it; 0 has no consent)
        answer = batch(client, world.headers("univ", "authorize"), [12, 2, 8, 0], "research", ["demographic"])
        assert answer["summary"] == {"permit": 0, "deny": 4}
        assert [[r["code"] for r in d["reasons"]] for d in answer["decisions"]] == [
            ["below_min_cell_size"],
            ["community_rule"],
            ["community_rule"],
            ["no_consent"],
        ]
        assert answer["decisions"][0]["reasons"][0]["community"] == "nation-c"


class TestRecording:
    def test_one_decision_row_per_subject_and_one_audit_entry_binding_them_in_an_intact_chain(
        self, app, client, world, cohort_world
    ):
        headers = world.headers("univ", "authorize")
        before = table_counts(app)
        subjects = [*range(13), 1, 2]
        answer = batch(client, headers, subjects, "research", ["health"])
        after = table_counts(app)
        assert after["decision"] - before["decision"] == len(subjects)
        assert after["audit_entry"] - before["audit_entry"] == 1
        batch_id = batch_id_of(app, answer)
        services = app.extensions[EXTENSION]
        with services.sessions() as session:
            ids = [d["decision_id"] for d in answer["decisions"]]
            assert len(set(ids)) == len(ids)
            rows = list(session.scalars(select(Decision).where(Decision.id.in_(ids))))
            stored = {row.id: row.outcome for row in rows}
            assert stored == {d["decision_id"]: d["decision"] for d in answer["decisions"]}
            assert {row.batch_id for row in rows} == {batch_id}
            (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.object_id == batch_id))
            assert entry.tag == "decision:batch"
            assert entry.actor_org == "univ"
            assert entry.payload["batch"] == {"id": batch_id, "size": len(subjects)}
            assert entry.payload["summary"] == answer["summary"]
            assert (entry.payload["purpose"], entry.payload["data_categories"]) == ("research", ["health"])
            named = audit_rows_service.namings_of(entry.payload)
            assert sorted(key[0] for table, key, _, _ in named if table == "decision") == sorted(ids)
            links = session.execute(
                select(DecisionCommunity.decision_id, DecisionCommunity.community_id).where(
                    DecisionCommunity.decision_id.in_(ids)
                )
            ).all()
            assert links  # members of the three communities are in the cohort
            assert sorted(key for table, key, _, _ in named if table == "decision_community") == sorted(
                [decision_id, community] for decision_id, community in links
            )
        assert audit_log.verify(services, checkpoint_tokens=[]).ok

    def test_each_decision_of_a_batch_links_to_the_batch_entry(self, app, client, world, cohort_world):
        answer = batch(client, world.headers("univ", "authorize"), [1, 2, 3], "research", ["health"])
        services = app.extensions[EXTENSION]
        batch_id = batch_id_of(app, answer)
        with services.sessions() as session:
            (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.object_id == batch_id))
        for decision in answer["decisions"]:
            looked_up = assert_ok(
                client.get(
                    f"/v1/decisions/{decision['decision_id']}", headers=world.headers("univ", "authorize")
                )
            )
            assert looked_up["audit"] == {"seq": entry.seq, "hash": entry.hash}

    def test_a_single_decision_keeps_its_own_entry_and_no_batch(self, app, client, world, cohort_world):
        answer = single(client, world.headers("univ", "authorize"), 1, "research", ["health"])
        services = app.extensions[EXTENSION]
        with services.sessions() as session:
            row = session.get(Decision, answer["decision_id"])
            assert row is not None and row.batch_id is None
            (entry,) = session.scalars(
                select(AuditEntry).where(AuditEntry.object_id == answer["decision_id"])
            )
            assert entry.tag == f"decision:{answer['decision']}"
            assert audit_rows_service.BATCH_ROWS not in entry.payload

    @pytest.mark.parametrize(
        "edit",
        [
            {"outcome": "permit"},
            {"reasons": []},
            {"subject_key": "someone-else"},
            {"batch_id": None},
            {"batch_id": "00000000-0000-4000-8000-000000000000"},
        ],
    )
    def test_an_edited_decision_row_of_a_batch_is_named_by_verify(
        self, app, client, world, cohort_world, edit
    ):
        answer = batch(client, world.headers("univ", "authorize"), [*range(13)], "research", ["health"])
        services = app.extensions[EXTENSION]
        target = answer["decisions"][5]["decision_id"]
        batch_id = batch_id_of(app, answer)
        with services.sessions() as session:
            seq = session.scalars(select(AuditEntry.seq).where(AuditEntry.object_id == batch_id)).one()
        with engine_of(app).begin() as conn:
            conn.execute(update(Decision).where(Decision.id == target).values(**edit))
        result = audit_log.verify(services, checkpoint_tokens=[])
        assert not result.ok
        assert (result.table, result.row, result.seq) == ("decision", [target], seq)
        assert "edited outside the service" in result.problem

    def test_a_deleted_decision_row_of_a_batch_is_named_by_verify(self, app, client, world, cohort_world):
        answer = batch(client, world.headers("univ", "authorize"), [*range(13)], "research", ["health"])
        services = app.extensions[EXTENSION]
        ids = [d["decision_id"] for d in answer["decisions"]]
        with services.sessions() as session:
            linked = set(
                session.scalars(
                    select(DecisionCommunity.decision_id).where(DecisionCommunity.decision_id.in_(ids))
                )
            )
        target = next(i for i in ids if i not in linked)  # a subject of no community: no link to delete first
        with engine_of(app).begin() as conn:
            conn.execute(delete(Decision).where(Decision.id == target))
        result = audit_log.verify(services, checkpoint_tokens=[])
        assert not result.ok
        assert (result.table, result.row) == ("decision", [target])
        assert "deleted outside the service" in result.problem

    def test_a_deleted_community_link_of_a_batch_is_named_by_verify(self, app, client, world, cohort_world):
        answer = batch(client, world.headers("univ", "authorize"), [*range(13)], "research", ["health"])
        services = app.extensions[EXTENSION]
        with services.sessions() as session:
            decision_id, community = session.execute(
                select(DecisionCommunity.decision_id, DecisionCommunity.community_id).where(
                    DecisionCommunity.decision_id.in_([d["decision_id"] for d in answer["decisions"]])
                )
            ).first()
        with engine_of(app).begin() as conn:
            conn.execute(
                delete(DecisionCommunity).where(
                    DecisionCommunity.decision_id == decision_id, DecisionCommunity.community_id == community
                )
            )
        result = audit_log.verify(services, checkpoint_tokens=[])
        assert not result.ok
        assert (result.table, result.row) == ("decision_community", [decision_id, community])
        assert "deleted outside the service" in result.problem

    def test_a_decision_row_added_to_a_batch_by_hand_is_named_by_verify(
        self, app, client, world, cohort_world
    ):
        answer = batch(client, world.headers("univ", "authorize"), [1, 2], "research", ["health"])
        services = app.extensions[EXTENSION]
        with services.sessions() as session:
            copied = session.get(Decision, answer["decisions"][0]["decision_id"])
            values = {c.name: getattr(copied, c.name) for c in Decision.__table__.columns}
        forged = str(uuid.uuid4())
        with engine_of(app).begin() as conn:
            conn.execute(insert(Decision).values({**values, "id": forged}))
        result = audit_log.verify(services, checkpoint_tokens=[])
        assert not result.ok
        assert (result.table, result.row) == ("decision", [forged])
        assert "inserted outside the service" in result.problem

    def test_a_failing_audit_write_records_nothing_and_answers_503(
        self, app, client, world, cohort_world, monkeypatch
    ):
        services = app.extensions[EXTENSION]
        headers = world.headers("univ", "authorize")

        def broken(*args: Any, **kwargs: Any) -> int:
            raise RuntimeError("disk full")

        before = table_counts(app)
        monkeypatch.setattr(services, "append_audit_many", broken)
        assert_error(
            client.post(
                BATCH,
                headers=headers,
                json={
                    "subjects": [subject(1), subject(2)],
                    "purpose": "research",
                    "data_categories": ["health"],
                },
            ),
            503,
            "unavailable",
        )
        assert table_counts(app) == before


class TestLimits:
    def body(self, count: int) -> dict[str, Any]:
        return {
            "subjects": [subject(n) for n in range(count)],
            "purpose": "research",
            "data_categories": ["health"],
        }

    def test_no_subjects_is_a_validation_error(self, app, client, world):
        headers = world.headers("univ", "authorize")
        before = table_counts(app)
        error = assert_error(client.post(BATCH, headers=headers, json=self.body(0)), 400, "validation_error")
        assert "subjects" in error["details"]
        assert table_counts(app) == before

    def test_more_than_10000_subjects_is_a_validation_error_not_413(self, app, client, world):
        headers = world.headers("univ", "authorize")
        before = table_counts(app)
        error = assert_error(
            client.post(BATCH, headers=headers, json=self.body(10_001)), 400, "validation_error"
        )
        assert "subjects" in error["details"]
        assert table_counts(app) == before

    def test_10000_subjects_are_decided_and_recorded(self, app, client, world):
        headers = world.headers("univ", "authorize")
        before = table_counts(app)
        answer = assert_ok(client.post(BATCH, headers=headers, json=self.body(10_000)))
        assert answer["summary"] == {"permit": 0, "deny": 10_000}
        assert answer["decisions"][-1]["subject_index"] == 9_999
        after = table_counts(app)
        assert after["audit_entry"] - before["audit_entry"] == 1
        assert after["decision"] - before["decision"] == 10_000
        assert audit_log.verify(app.extensions[EXTENSION], checkpoint_tokens=[]).ok

    @pytest.mark.parametrize(
        ("item", "field"),
        [
            ({"system": "urn:x"}, "value"),
            ({"system": "urn:x", "value": ""}, "value"),
            ({"system": "urn:x", "value": "a\nb"}, "value"),
            ({"system": 3, "value": "x"}, "system"),
            ({"system": "urn:x", "value": "x", "name": "Ann"}, "name"),
            ({"system": "urn:x", "value": "x" * 257}, "value"),
        ],
    )
    def test_a_malformed_subject_is_named_by_its_index(self, client, world, item, field):
        body = self.body(3)
        body["subjects"][2] = item
        error = assert_error(
            client.post(BATCH, headers=world.headers("univ", "authorize"), json=body), 400, "validation_error"
        )
        # Nested messages keep their path inside the field: "2.value: ...".
        assert any(message.startswith(f"2.{field}:") for message in error["details"]["subjects"]), error

    def test_a_subject_that_is_not_an_object(self, client, world):
        body = self.body(2)
        body["subjects"][0] = "S-1"
        assert_error(
            client.post(BATCH, headers=world.headers("univ", "authorize"), json=body), 400, "validation_error"
        )

    def test_unknown_codes(self, client, world):
        body = self.body(2) | {"data_categories": ["dna"]}
        assert_error(
            client.post(BATCH, headers=world.headers("univ", "authorize"), json=body), 400, "unknown_code"
        )

    def test_needs_the_authorize_scope(self, client, world):
        assert_error(
            client.post(BATCH, headers=world.headers("univ", "consents:read"), json=self.body(1)),
            403,
            "forbidden",
        )

    def test_needs_a_token(self, client):
        assert_error(client.post(BATCH, json=self.body(1)), 401, "unauthorized")

    def test_the_service_wide_body_limit_still_holds_elsewhere(self, client, world):
        huge = {
            "subject": subject(1),
            "purpose": "research",
            "data_categories": ["health"],
            "pad": "x" * 300_000,
        }
        assert_error(
            client.post("/v1/authorize", headers=world.headers("univ", "authorize"), json=huge),
            413,
            "payload_too_large",
        )
