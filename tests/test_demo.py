"""`consent-service demo` loads a world in which its printed commands show what they say."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from consent_service.demo import SUBJECT, load_demo


def _ask(client, token: str, purpose: str, category: str) -> dict:
    return client.post(
        "/v1/authorize",
        headers={"Authorization": f"Bearer {token}"},
        json={"subject": SUBJECT, "purpose": purpose, "data_categories": [category]},
    ).get_json()


def _token(client, text: str, org: str) -> str:
    variable = "TOKEN_" + org.upper().replace("-", "_")
    client_id, secret = re.search(rf"{variable}=\$\(curl -s -u '([^:]+):([^']+)'", text).groups()
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    return response.get_json()["access_token"]


class TestDemoWorld:
    def test_the_printed_commands_show_a_permit_and_the_refusals(self, app, client, world):
        text = load_demo(world.services, base_url="http://127.0.0.1:5000", now=datetime.now(UTC))
        gla = _token(client, text, "gla")
        planning = _ask(client, gla, "service-planning", "housing")
        assert planning["decision"] == "permit"
        assert {"code": "no_onward_disclosure", "source": "deployment"} in planning["obligations"]
        # the person agreed to demographics only: nationality stands alone
        nationality = _ask(client, gla, "service-planning", "nationality")
        assert [r["code"] for r in nationality["reasons"]] == ["no_consent"]
        refused = _ask(client, _token(client, text, "home-office"), "immigration-enforcement", "nationality")
        assert [r["code"] for r in refused["reasons"]] == ["no_consent"]
        research = _ask(client, _token(client, text, "univ"), "research", "health")
        assert [r["code"] for r in research["reasons"]] == ["community_rule"]
        assert "community" not in research["reasons"][0]  # Nation A has not chosen to show its id

    def test_each_party_gets_only_the_scopes_it_needs(self, app, world):
        from consent_service.storage import organizations as store

        load_demo(world.services, base_url="http://x", now=datetime.now(UTC))
        with world.services.sessions() as session:
            council = {
                scope for c in store.list_clients(session, "nation-a-council") for scope in c.scopes.split()
            }
            everyone = {
                scope
                for c in store.list_clients(session)
                if c.organization_id != "admin"
                for scope in c.scopes.split()
            }
        assert council == {"rules:write", "community:read"}
        assert "audit:read" not in everyone and "admin" not in everyone

    def test_recording_immigration_enforcement_at_street_outreach_was_refused(self, app, client, world):
        text = load_demo(world.services, base_url="http://127.0.0.1:5000", now=datetime.now(UTC))
        assert "protected_purpose: A consent may not grant immigration-enforcement" in text
        body = re.search(r"/v1/consents -H [^\n]*\n[^\n]*-d '(\{.*?\}\}')", text, re.S)
        assert body is not None
        outreach = _token(client, text, "outreach-org")
        response = client.post(
            "/v1/consents",
            headers={"Authorization": f"Bearer {outreach}"},
            data=body.group(1)[:-1],
            content_type="application/json",
        )
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "protected_purpose", response.get_json()

    def test_loading_twice_keeps_working(self, app, world):
        now = datetime.now(UTC)
        load_demo(world.services, base_url="http://x", now=now)
        assert "TOKEN_GLA=" in load_demo(world.services, base_url="http://x", now=now)
