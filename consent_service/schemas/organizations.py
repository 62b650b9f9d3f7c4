"""Schemas of the organizations resource: organizations and OAuth clients (and, until they move
to schemas/communities.py, the community administration bodies).

The output schemas dump the dataclasses of ``services.organizations``; its audit payloads dump
through them too (with ``only=``).
"""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.core.permissions import Scope
from consent_service.core.wire import OrgType
from consent_service.schemas.common import StrictSchema, code


class OrganizationIn(StrictSchema):
    id = code(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(required=True, validate=validate.OneOf([str(t) for t in OrgType]))


class OrganizationOut(StrictSchema):
    id = fields.String()
    name = fields.String()
    type = fields.String()
    created_at = fields.AwareDateTime()


class ClientIn(StrictSchema):
    organization = code(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=validate.OneOf([str(s) for s in Scope])),
        required=True,
        validate=validate.Length(min=1, max=len(Scope)),
    )


class ClientOut(StrictSchema):
    client_id = fields.String()
    client_secret = fields.String()
    organization = fields.String()
    name = fields.String()
    scopes = fields.List(fields.String())
    created_at = fields.AwareDateTime()
    disabled_at = fields.AwareDateTime(allow_none=True)


class ClientListOut(StrictSchema):
    community = fields.String()
    clients = fields.List(fields.Nested(ClientOut))
