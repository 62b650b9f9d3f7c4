"""The rough-sleeper example world, for a newcomer's first minute with the service.

An outreach organization records, at its office, a person's consent to use their
demographics, health and housing data for service delivery and planning (and research with a
university). The planning authority is then permitted to plan services, and the permit says the
data may not be passed on (``no_onward_disclosure``); asking for nationality it is refused,
because the person agreed to demographics only and nationality is a sensitive category covered
only when named; an attempt to record, at a street-outreach encounter, a consent for the Home
Office to use the person's data for immigration enforcement is refused (``protected_purpose``);
and the university asking for health research is stopped by the person's Nation. The Nation's
council gets rules:write and community:read, never audit:read.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from consent_service.container import Services
from consent_service.core.caller import Caller, Via
from consent_service.errors import ServiceError
from consent_service.services import communities, consents, organizations, rules, subjects
from consent_service.storage import communities as community_store
from consent_service.storage import organizations as organization_store
from consent_service.storage.db import read_snapshot

ORGANIZATIONS = [
    ("outreach-org", "Street Outreach Collective", "service-provider", ["consents:write", "consents:read"]),
    ("gla", "Regional Planning Authority", "government", ["authorize"]),
    ("home-office", "Home Office", "government", ["authorize"]),
    ("univ", "University Research Centre", "research", ["authorize"]),
    # A council manages and reads its own community; audit:read (every entry about everyone) is
    # oversight of the whole deployment and is not a council's.
    ("nation-a-council", "Nation A Council", "community-governance", ["rules:write", "community:read"]),
]
SUBJECT = {"system": "urn:outreach-org:client", "value": "C-0517"}


def _ensure_organizations(services: Services, now: datetime) -> dict[str, tuple[str, str]]:
    credentials = {}
    for org_id, name, kind, scopes in ORGANIZATIONS:
        with read_snapshot(services.sessions) as session:
            exists = organization_store.get_organization(session, org_id) is not None
        if not exists:
            organizations.create_organization(services, caller=None, id=org_id, name=name, type=kind, now=now)
        client = organizations.create_client(
            services, caller=None, organization=org_id, name=f"{name} (demo)", scopes=scopes, now=now
        )
        credentials[org_id] = (client.client_id, client.client_secret)
    return credentials


def _ensure_community(services: Services, now: datetime) -> None:
    with read_snapshot(services.sessions) as session:
        exists = community_store.get(session, "nation-a") is not None
    if exists:
        return
    admin = Caller(organization="admin", client_id="demo", scopes=frozenset({"admin"}), via=Via.OPERATOR)
    communities.create_community(
        services, caller=admin, id="nation-a", name="Nation A", stewards=["nation-a-council"], now=now
    )
    steward = Caller(
        organization="nation-a-council", client_id="demo", scopes=frozenset({"rules:write"}), via=Via.OPERATOR
    )
    rules.create_rule(
        services,
        caller=steward,
        community_id="nation-a",
        effect="deny",
        purposes=["research"],
        data_categories=["substance-use"],
        requesters=["*"],
        obligations={},
        labels=[],
        reason="Nation A has not approved research on substance use",
        now=now,
    )


def _ensure_subject_system(services: Services, now: datetime) -> None:
    """outreach-org records its clients under its own system (contract v1.1: registered first)."""
    with read_snapshot(services.sessions) as session:
        exists = services.subjects.system(session, SUBJECT["system"]) is not None
    if not exists:
        subjects.register(
            services,
            caller=None,
            system=SUBJECT["system"],
            organization="outreach-org",
            shared=False,
            case_insensitive=False,
            now=now,
        )


def load_demo(services: Services, *, base_url: str, now: datetime) -> str:
    credentials = _ensure_organizations(services, now)
    _ensure_community(services, now)
    _ensure_subject_system(services, now)
    outreach = Caller(
        organization="outreach-org",
        client_id=credentials["outreach-org"][0],
        scopes=frozenset({"consents:write"}),
        via=Via.OPERATOR,
    )
    consent = consents.record(
        services,
        caller=outreach,
        subject=SUBJECT,
        now=now,
        terms={
            "communities": ["nation-a"],
            "purposes": ["service-delivery", "service-planning", "research"],
            "data_categories": ["demographic", "health", "housing"],
            "recipients": ["outreach-org", "gla", "univ"],
            "expires_at": now + timedelta(days=365),
            "evidence": {
                "method": "verbal",
                "obtained_by": "worker-17",
                "notes": "interpreter present",
                "setting": "office",
            },
        },
    )
    # What the deployment policy refuses: immigration enforcement, asked at 2 a.m. in a tent.
    try:
        consents.record(
            services,
            caller=outreach,
            subject=SUBJECT,
            now=now,
            terms={
                "communities": [],
                "purposes": ["immigration-enforcement"],
                "data_categories": ["nationality"],
                "recipients": ["home-office"],
                "expires_at": None,
                "evidence": {"method": "verbal", "obtained_by": "worker-17", "setting": "street-outreach"},
            },
        )
        refusal = "RECORDED (the deployment policy allows it: check policies/deployment.toml)"
    except ServiceError as exc:
        refusal = f"{exc.code}: {exc.message}"

    def token(org: str) -> str:
        client_id, secret = credentials[org]
        return (
            f"$(curl -s -u '{client_id}:{secret}' -d grant_type=client_credentials {base_url}/oauth/token"
            " | python3 -c 'import sys,json; print(json.load(sys.stdin)[\"access_token\"])')"
        )

    subject = json.dumps(SUBJECT)

    def ask(org: str, purpose: str, category: str) -> str:
        variable = "TOKEN_" + org.upper().replace("-", "_")
        return (
            f'curl -s {base_url}/v1/authorize -H "Authorization: Bearer ${variable}"'
            f' -H \'Content-Type: application/json\' -d \'{{"subject": {subject}, "purpose": "{purpose}",'
            f' "data_categories": ["{category}"]}}\''
        )

    return f"""# The rough-sleeper example is loaded (consent {consent.id}, recorded by outreach-org
# at its office for service-delivery, service-planning and research of demographics, health and
# housing; Nation A denies health research).
# Recording a second consent at a street-outreach encounter, for the Home Office to use the
# person's nationality for immigration enforcement, was refused:
#   {refusal}
# (step 4 below does the same with curl)

# Paste these into a shell while `make run` serves on {base_url}:

TOKEN_GLA={token("gla")}
TOKEN_HOME_OFFICE={token("home-office")}
TOKEN_UNIV={token("univ")}
TOKEN_OUTREACH_ORG={token("outreach-org")}

# 1. The planning authority plans services with the person's consent -> permit, with the
#    obligations no_onward_disclosure and purpose_limited: the data may not be passed on
{ask("gla", "service-planning", "housing")}

# 2. The planning authority asks for nationality: the person agreed to demographics only, and
#    nationality is a sensitive category, covered only when named -> deny (no_consent)
{ask("gla", "service-planning", "nationality")}

# 3. The Home Office asks to use nationality for immigration enforcement -> deny (no_consent)
{ask("home-office", "immigration-enforcement", "nationality")}

# 4. The outreach worker tries to record that consent at a street-outreach encounter
#    -> 400 protected_purpose, nothing written
curl -s {base_url}/v1/consents -H "Authorization: Bearer $TOKEN_OUTREACH_ORG" \\
  -H 'Content-Type: application/json' -d '{{"subject": {subject}, "purposes": ["immigration-enforcement"],
  "data_categories": ["nationality"], "recipients": ["home-office"],
  "evidence": {{"method": "verbal", "obtained_by": "worker-17", "setting": "street-outreach"}}}}'

# 5. A university the person consented to asks for health research, which would include substance
#    use, on which Nation A has not approved research: its rule overrides
#    -> deny (community_rule, with the rule's id and reason; Nation A's id is not shown unless it
#    chooses so). A requester no consent names would get exactly the no_consent of an unknown person.
{ask("univ", "research", "health")}

# 6. The person withdraws consent; the planning authority's next call is denied
curl -s {base_url}/v1/consents/{consent.id}/revoke -H "Authorization: Bearer $TOKEN_OUTREACH_ORG" \\
  -H 'Content-Type: application/json' -d '{{"reason": "person asked"}}'
{ask("gla", "service-planning", "housing")}
"""
