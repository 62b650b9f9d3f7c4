from __future__ import annotations

from marshmallow import fields, validate

from consent_service.core.permissions import Scope
from consent_service.core.wire import OrgType
from consent_service.schemas.common import StrictSchema, code
from consent_service.schemas.communities import CommunityIn, CommunityOut  # noqa: F401 (moved; views/organizations.py)


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
    scopes = fields.List(fields.String(validate=validate.OneOf([str(s) for s in Scope])), required=True,
                         validate=validate.Length(min=1, max=len(Scope)))


class ClientOut(StrictSchema):
    client_id = fields.String()
    client_secret = fields.String()
    organization = fields.String()
    name = fields.String()
    scopes = fields.List(fields.String())
    created_at = fields.AwareDateTime()
    disabled_at = fields.AwareDateTime(allow_none=True)


class SubjectSystemIn(StrictSchema):
    system = fields.String(required=True, validate=validate.Length(min=1, max=256), metadata={
        "description": "an absolute URI (urn:... or https:...), stored in its normalized spelling"})
    organization = code(load_default=None, metadata={"description": "the organization it is registered to"})
    shared = fields.Boolean(load_default=False, metadata={"description": "true: any organization may use it"})
    case_insensitive = fields.Boolean(load_default=False, metadata={
        "description": "true: values compare case-folded (e.g. a health card number)"})


class SubjectSystemOut(StrictSchema):
    system = fields.String()
    organization = fields.String(allow_none=True)
    shared = fields.Boolean()
    case_insensitive = fields.Boolean()
    created_at = fields.AwareDateTime()


class SubjectSystemsOut(StrictSchema):
    subject_systems = fields.List(fields.Nested(SubjectSystemOut))


class ClientListOut(StrictSchema):
    community = fields.String()
    clients = fields.List(fields.Nested(ClientOut))
