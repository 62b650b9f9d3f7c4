from __future__ import annotations


def test_vocabulary_needs_a_token(client):
    response = client.get("/v1/vocabulary")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_vocabulary_lists_contract_codes(client, world):
    response = client.get("/v1/vocabulary", headers=world.headers("outreach-org", "authorize"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    purposes = {p["code"]: p["parent"] for p in body["purposes"]}
    assert purposes["care-coordination"] == "service-delivery"
