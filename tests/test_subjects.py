"""The person's access report (JSON and printable page) and the printable consent receipt."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from trust_helpers import SUBJECT, add_community, add_rule, consent_body

from consent_service.services.subjects import OTHER_CONSENT

XSS = "<script>alert('x')</script>"


def terms(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in consent_body(**changes).items() if k != "subject"}


@pytest.fixture
def story(app, client, world) -> dict[str, Any]:
    """outreach-org records, amends and revokes; others ask; another organization has its own consent
    (under the same system, so it is registered as shared, before anyone uses it)."""
    world.system(SUBJECT["system"])
    for org, kind in (("gla", "government"), ("home-office", "government"), ("univ", "research")):
        world.org(org, kind)
    writer = world.headers("outreach-org", "consents:write")
    first = client.post("/v1/consents", json=consent_body(), headers=writer).get_json()
    amended = client.post(
        f"/v1/consents/{first['id']}/amend", json=terms(purposes=["service-delivery"]), headers=writer
    ).get_json()
    assert amended["version"] == 2
    second = client.post("/v1/consents", json=consent_body(purposes=["research"]), headers=writer).get_json()
    assert (
        client.post(f"/v1/consents/{second['id']}/revoke", json={"reason": XSS}, headers=writer).status_code
        == 200
    )
    elsewhere = client.post(
        "/v1/consents",
        json=consent_body(recipients=["univ"], purposes=["program-evaluation"]),
        headers=world.headers("other-sp", "consents:write"),
    ).get_json()

    def ask(org: str, purpose: str, categories: list[str]) -> dict[str, Any]:
        response = client.post(
            "/v1/authorize",
            json={"subject": SUBJECT, "purpose": purpose, "data_categories": categories},
            headers=world.headers(org, "authorize"),
        )
        return response.get_json()  # type: ignore[no-any-return]

    return {
        "first": first,
        "second": second,
        "elsewhere": elsewhere,
        "permit": ask("gla", "referral", ["housing"]),
        "deny": ask("home-office", "immigration-enforcement", ["nationality"]),
        "other": ask("univ", "program-evaluation", ["health"]),
    }


def report(client, world, subject: dict[str, str] = SUBJECT, org: str = "outreach-org", **kwargs: Any):
    return client.post(
        "/v1/subjects/access-report",
        json={"subject": subject},
        headers={**world.headers(org, "consents:read"), **kwargs.pop("headers", {})},
        **kwargs,
    )


class TestReport:
    def test_lists_own_consents_with_every_version_and_revocation(self, client, world, story):
        response = report(client, world)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert {c["id"] for c in body["consents"]} == {story["first"]["id"], story["second"]["id"]}
        first = next(c for c in body["consents"] if c["id"] == story["first"]["id"])
        assert [v["version"] for v in first["versions"]] == [1, 2] and first["current_version"] == 2
        assert first["versions"][0]["purposes"] == ["service-delivery", "service-planning"]
        assert [e["kind"] for e in first["events"]] == ["recorded", "amended"]
        second = next(c for c in body["consents"] if c["id"] == story["second"]["id"])
        assert second["status"] == "revoked" and second["revoked_reason"] == XSS
        assert [e["kind"] for e in second["events"]] == ["recorded", "revoked"]
        assert story["elsewhere"]["id"] not in str(body["consents"])

    def test_lists_every_decision_about_the_person(self, client, world, story):
        decisions = {d["decision_id"]: d for d in report(client, world).get_json()["decisions"]}
        assert set(decisions) == {story[k]["decision_id"] for k in ("permit", "deny", "other")}
        permit = decisions[story["permit"]["decision_id"]]
        assert (permit["requester"], permit["purpose"], permit["data_categories"], permit["decision"]) == (
            "gla",
            "referral",
            ["housing"],
            "permit",
        )
        assert permit["consent_id"] == story["first"]["id"] and permit["consent_version"] == 2
        deny = decisions[story["deny"]["decision_id"]]
        assert deny["decision"] == "deny" and deny["reasons"][0]["code"] == "no_consent"
        assert deny["at"]

    def test_another_organizations_consent_is_not_named(self, client, world, story):
        body = report(client, world).get_json()
        other = next(d for d in body["decisions"] if d["decision_id"] == story["other"]["decision_id"])
        assert other["decision"] == "permit" and other["consent_id"] is None
        assert other["reasons"] == [{"code": "consent", "message": OTHER_CONSENT}]
        assert story["elsewhere"]["id"] not in str(body)

    def test_labels_and_no_raw_identifier_in_the_log_fields(self, client, world, story):
        body = report(client, world).get_json()
        assert body["labels"]["purposes"]["referral"] == "Referral"
        assert body["labels"]["organizations"]["gla"] == "Gla"
        assert body["subject"]["pseudonym"] == story["first"]["subject_pseudonym"]

    def test_a_community_rule_names_the_community(self, app, client, world):
        add_community(client, world)
        world.org("gla", "government")
        writer = world.headers("outreach-org", "consents:write")
        assert (
            client.post(
                "/v1/consents", json=consent_body(communities=["nation-a"]), headers=writer
            ).status_code
            == 201
        )
        rule = add_rule(
            app,
            community="nation-a",
            purposes=["referral"],
            data_categories=["*"],
            reason="Nation A keeps referrals inside the nation",
        )
        client.post(
            "/v1/authorize",
            json={"subject": SUBJECT, "purpose": "referral", "data_categories": ["housing"]},
            headers=world.headers("gla", "authorize"),
        )
        body = report(client, world).get_json()
        reason = body["decisions"][0]["reasons"][0]
        assert reason == {
            "code": "community_rule",
            "message": "Nation A keeps referrals inside the nation",
            "rule_id": rule,
            "community": "nation-a",
        }
        page = report(client, world, query_string={"format": "html"}).get_data(as_text=True)
        assert (
            "A rule of Nation-A does not let Gla use Housing for Referral: "
            "“Nation A keeps referrals inside the nation”." in page
        )
        assert rule not in page  # names, never ids


class TestWhoMaySee:
    def test_an_organization_without_a_consent_of_the_person_gets_404(self, client, world, story):
        response = report(client, world, org="gla")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"

    def test_an_unknown_person_is_the_same_404(self, client, world, story):
        response = report(client, world, subject={"system": "urn:x", "value": "nobody"})
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"

    def test_needs_consents_read(self, client, world, story):
        response = client.post(
            "/v1/subjects/access-report",
            json={"subject": SUBJECT},
            headers=world.headers("outreach-org", "authorize"),
        )
        assert response.status_code == 403
        assert client.post("/v1/subjects/access-report", json={"subject": SUBJECT}).status_code == 401

    @pytest.mark.parametrize("body", [{}, {"subject": {"system": "urn:x"}}, {"subject": SUBJECT, "extra": 1}])
    def test_validation(self, client, world, body):
        response = client.post(
            "/v1/subjects/access-report", json=body, headers=world.headers("outreach-org", "consents:read")
        )
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "validation_error"


def _style_hash(page: str) -> str:
    css = re.search(r"<style>(.*?)</style>", page, re.S)
    assert css is not None
    return base64.b64encode(hashlib.sha256(css.group(1).encode()).digest()).decode()


def assert_safe_page(response) -> str:
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "script-src 'none'" in csp
    assert f"'sha256-{_style_hash(page)}'" in csp
    assert "<script" not in page.lower() and " on" + "click" not in page
    assert response.headers["Cache-Control"] == "no-store"
    return page


class TestPrintablePage:
    def test_format_html(self, client, world, story):
        page = assert_safe_page(report(client, world, query_string={"format": "html"}))
        assert "Your data: who asked for it, and why" in page
        assert "Allowed" in page and "Refused" in page
        assert "Gla" in page and "Home-Office" in page and "Immigration enforcement" in page
        # Reasons in names, never ids (issue 11).
        for sentence in (
            "No consent lets Home-Office use Nationality and immigration status for Immigration enforcement.",
            "Your consent 1 lets Gla use Housing for Referral.",
            "A consent you gave to another organization lets Univ use Health for Program evaluation.",
        ):
            assert sentence in page
        assert story["first"]["id"][:8] not in page.split("<table", 1)[1]
        assert "&lt;script&gt;" in page  # the revocation reason, escaped

    def test_accept_header(self, client, world, story):
        assert report(client, world, headers={"Accept": "text/html"}).mimetype == "text/html"
        assert report(client, world, headers={"Accept": "*/*"}).mimetype == "application/json"
        assert report(client, world).mimetype == "application/json"
        assert (
            report(client, world, headers={"Accept": "text/html"}, query_string={"format": "json"}).mimetype
            == "application/json"
        )

    def test_unknown_format(self, client, world, story):
        response = report(client, world, query_string={"format": "pdf"})
        assert response.status_code == 400 and "format" in response.get_json()["error"]["details"]


class TestReceiptPage:
    def test_owner_gets_a_printable_receipt(self, client, world, story):
        consent = story["first"]
        response = client.get(
            f"/v1/consents/{consent['id']}/receipt.html",
            headers=world.headers("outreach-org", "consents:read"),
        )
        page = assert_safe_page(response)
        assert "Your consent receipt" in page
        assert "Service delivery" in page and "Gla" in page and "How to withdraw" in page
        assert "in force" in page
        token = client.get(
            f"/v1/consents/{consent['id']}", headers=world.headers("outreach-org", "consents:read")
        )
        assert token.get_json()["receipt"] in page

    def test_an_earlier_version(self, client, world, story):
        consent = story["first"]
        page = assert_safe_page(
            client.get(
                f"/v1/consents/{consent['id']}/receipt.html?version=1",
                headers=world.headers("outreach-org", "consents:read"),
            )
        )
        assert "Service planning" in page and "later replaced by version 2" in page
        assert consent["receipt"] in page

    def test_a_withdrawn_consent_says_so(self, client, world, story):
        page = assert_safe_page(
            client.get(
                f"/v1/consents/{story['second']['id']}/receipt.html",
                headers=world.headers("outreach-org", "consents:write"),
            )
        )
        assert "withdrawn" in page

    @pytest.mark.parametrize("org", ["other-sp", "gla"])
    def test_others_get_404(self, client, world, story, org):
        response = client.get(
            f"/v1/consents/{story['first']['id']}/receipt.html", headers=world.headers(org, "consents:read")
        )
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"

    def test_unknown_version_or_consent(self, client, world, story):
        headers = world.headers("outreach-org", "consents:read")
        assert (
            client.get(
                f"/v1/consents/{story['first']['id']}/receipt.html?version=9", headers=headers
            ).status_code
            == 404
        )
        assert client.get("/v1/consents/nope/receipt.html", headers=headers).status_code == 404
        assert (
            client.get(
                f"/v1/consents/{story['first']['id']}/receipt.html?version=0", headers=headers
            ).status_code
            == 400
        )
