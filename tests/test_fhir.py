"""GET /v1/consents/{id}/fhir: an HL7 FHIR R4 Consent, validated with an independent model library."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent  # R4B's Consent is R4's (no changes between them)
from trust_helpers import SUBJECT, add_community, add_rule, consent_body

EXPIRES = "2031-11-22T00:00:00+00:00"


@pytest.fixture
def consent(client, world) -> dict[str, Any]:
    world.org("gla", "government")
    response = client.post(
        "/v1/consents",
        json=consent_body(expires_at=EXPIRES, communities=[]),
        headers=world.headers("outreach-org", "consents:write"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def fhir(client, world, consent_id: str, org: str = "outreach-org", *scopes: str):
    return client.get(
        f"/v1/consents/{consent_id}/fhir", headers=world.headers(org, *(scopes or ("consents:read",)))
    )


CONSENT_STATES = {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}  # R4 value set


def _provision_types(provision: dict[str, Any]) -> list[str]:
    return [
        provision["type"],
        *(t for child in provision.get("provision", []) for t in _provision_types(child)),
    ]


def valid(response) -> tuple[dict[str, Any], Consent]:
    """Structure and cardinality by fhir.resources; the required code bindings and the R4
    invariants it does not evaluate (ppc-1 policy or policyRule, ppc-2 privacy needs a patient)
    checked here."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body = json.loads(response.get_data(as_text=True))
    model = Consent.model_validate(body)
    assert model.status in CONSENT_STATES
    assert set(_provision_types(body["provision"])) <= {"deny", "permit"}
    assert model.policy or model.policyRule
    assert model.patient is not None
    return body, model


class TestResource:
    def test_validates_and_maps_the_consent(self, client, world, consent):
        body, model = valid(fhir(client, world, consent["id"]))
        assert model.status == "active"
        assert model.scope.coding[0].code == "patient-privacy"
        assert model.category[0].coding[0].system == "http://loinc.org"
        assert model.patient.identifier.value == consent["subject_pseudonym"]
        assert model.performer[0].identifier.value == consent["subject_pseudonym"]
        assert model.organization[0].identifier.value == "outreach-org"
        assert model.dateTime is not None and model.meta.versionId == "1"
        assert "C-1042" not in json.dumps(body)

        provision = model.provision
        assert provision.type == "permit"
        assert str(provision.period.end).startswith("2031-11-22")
        assert [c.code for c in provision.purpose] == consent_body()["purposes"]
        assert [c.code for c in provision.class_fhir] == consent_body()["data_categories"]
        assert {a.reference.identifier.value for a in provision.actor} == {"outreach-org", "gla"}
        assert all(a.role.coding[0].code == "IRCP" for a in provision.actor)
        assert not provision.provision

    def test_carries_the_signed_receipt(self, client, world, consent):
        body, _ = valid(fhir(client, world, consent["id"]))
        attachment = body["sourceAttachment"]
        assert attachment["contentType"] == "application/jose"
        assert base64.b64decode(attachment["data"]).decode() == consent["receipt"]

    def test_a_revoked_consent_is_inactive_and_its_period_ends(self, client, world, consent):
        revoked = client.post(
            f"/v1/consents/{consent['id']}/revoke",
            json={"reason": "asked"},
            headers=world.headers("outreach-org", "consents:write"),
        ).get_json()
        body, model = valid(fhir(client, world, consent["id"]))
        assert model.status == "inactive"
        assert body["provision"]["period"]["end"][:19] == revoked["revoked_at"][:19]

    def test_the_current_version_is_exported(self, client, world, consent):
        terms = {k: v for k, v in consent_body(purposes=["referral"]).items() if k != "subject"}
        client.post(
            f"/v1/consents/{consent['id']}/amend",
            json=terms,
            headers=world.headers("outreach-org", "consents:write"),
        )
        _, model = valid(fhir(client, world, consent["id"]))
        assert model.meta.versionId == "2" and [c.code for c in model.provision.purpose] == ["referral"]


class TestCommunityDenyProvisions:
    @pytest.mark.parametrize("shown", [False, True])
    def test_nested_denies_for_the_persons_communities(self, app, client, world, shown):
        add_community(client, world, "nation-a", show_community_id=shown)
        add_community(client, world, "nation-b", steward="nation-b-council")
        world.org("gla", "government")
        world.org("home-office", "government")
        writer = world.headers("outreach-org", "consents:write")
        # membership recorded through one consent applies to the person's other consents too
        client.post(
            "/v1/consents", json=consent_body(communities=["nation-a"], purposes=["research"]), headers=writer
        )
        consent = client.post("/v1/consents", json=consent_body(), headers=writer).get_json()
        everything = add_rule(app, community="nation-a", purposes=["research"], data_categories=["*"])
        narrow = add_rule(
            app,
            community="nation-a",
            purposes=["service-delivery"],
            data_categories=["nationality"],
            requesters=["home-office"],
        )
        add_rule(
            app,
            community="nation-a",
            effect="require_approval",
            purposes=["program-evaluation"],
            data_categories=["health"],
        )
        add_rule(app, community="nation-b", purposes=["service-planning"], data_categories=["*"])

        body, model = valid(fhir(client, world, consent["id"]))
        nested = {p.id: p for p in model.provision.provision}
        assert set(nested) == {f"rule-{everything}", f"rule-{narrow}"}
        broad = nested[f"rule-{everything}"]
        assert broad.type == "deny" and [c.code for c in broad.purpose] == ["research"]
        assert not broad.class_fhir and not broad.actor  # "*": all data, every requester
        specific = nested[f"rule-{narrow}"]
        assert [c.code for c in specific.class_fhir] == ["nationality"]
        assert [a.reference.identifier.value for a in specific.actor] == ["home-office"]
        extension = {
            e["url"]: e["valueString"] for e in body["provision"]["provision"][0]["extension"][0]["extension"]
        }
        # The community's id only where the community shows it (docs/security.md, membership disclosure).
        assert extension.get("community") == ("nation-a" if shown else None)
        assert extension["reason"] == "Not approved by the community"

    def test_no_deny_rule_for_a_recorder_no_consent_names(self, app, client, world):
        """A recording organization that is not a recipient of any consent of the person is told
        no community rule: they would reveal that the person is a member."""
        add_community(client, world, "nation-a", show_community_id=True)
        world.org("gla", "government")
        world.org("home-office", "government")
        member = client.post(
            "/v1/consents",
            json=consent_body(communities=["nation-a"], recipients=["gla"]),
            headers=world.headers("outreach-org", "consents:write"),
        ).get_json()
        add_rule(app, community="nation-a", purposes=["research"], data_categories=["*"])

        body, _ = valid(fhir(client, world, member["id"]))

        assert "provision" not in body["provision"]
        admin_view, _ = valid(fhir(client, world, member["id"], "admin", "admin"))
        assert len(admin_view["provision"]["provision"]) == 1  # oversight sees the rule

    def test_a_retired_rule_is_gone(self, app, client, world):
        from datetime import UTC, datetime

        from consent_service.container import EXTENSION
        from consent_service.storage.models import CommunityRule

        add_community(client, world)
        world.org("gla", "government")
        consent = client.post(
            "/v1/consents",
            json=consent_body(communities=["nation-a"]),
            headers=world.headers("outreach-org", "consents:write"),
        ).get_json()
        rule = add_rule(app, community="nation-a", purposes=["research"], data_categories=["*"])
        with app.extensions[EXTENSION].sessions() as session:
            session.get(CommunityRule, rule).retired_at = datetime.now(UTC)
            session.commit()
        _, model = valid(fhir(client, world, consent["id"]))
        assert not model.provision.provision


class TestAccess:
    def test_admin_may_export(self, client, world, consent):
        valid(fhir(client, world, consent["id"], "admin", "admin"))

    @pytest.mark.parametrize("org", ["gla", "other-sp"])
    def test_others_get_404(self, client, world, consent, org):
        response = fhir(client, world, consent["id"], org)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"

    def test_unknown_and_unauthenticated(self, client, world):
        assert fhir(client, world, "nope").status_code == 404
        assert client.get("/v1/consents/nope/fhir").status_code == 401
        assert fhir(client, world, "nope", "outreach-org", "authorize").status_code == 403


def test_subject_is_never_raw(client, world, consent):
    assert SUBJECT["value"] not in fhir(client, world, consent["id"]).get_data(as_text=True)
