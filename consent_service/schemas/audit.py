"""Schemas of the audit resource. ``EntryOut`` dumps ``core.audit_chain.Entry`` (the one definition
of an entry's fields), ``VerificationOut`` dumps ``core.audit_chain.Verification``, and the others
the dataclasses of ``services.audit``.
"""

from __future__ import annotations

from marshmallow import fields, validate

from consent_service.schemas.common import StrictSchema


class VerifyIn(StrictSchema):
    checkpoints = fields.List(
        fields.String(validate=validate.Length(min=1, max=4096)),
        required=True,
        validate=validate.Length(max=100),
        metadata={"description": "signed checkpoints exported earlier (GET /v1/audit/checkpoint)"},
    )


class EntryOut(StrictSchema):
    """One audit entry (``core.audit_chain.Entry``), as exported."""

    seq = fields.Integer()
    at = fields.AwareDateTime()
    tag = fields.String()
    actor_org = fields.String(allow_none=True)
    actor_client = fields.String(allow_none=True)
    object_id = fields.String(allow_none=True)
    payload = fields.Dict()
    prev_hash = fields.String()
    hash = fields.String()


class BrokenEntryOut(EntryOut):
    """What is stored where the chain breaks: the entry without its actors, payload and links."""

    class Meta(EntryOut.Meta):
        exclude = ("actor_org", "actor_client", "payload", "prev_hash", "hash")


class VerificationOut(StrictSchema):
    ok = fields.Boolean(required=True)
    entries = fields.Integer(required=True, metadata={"description": "entries verified before any break"})
    head_seq = fields.Integer(required=True)
    head_hash = fields.String(required=True)
    problem = fields.String(allow_none=True, metadata={"description": "what is wrong, naming the entry"})
    seq = fields.Integer(allow_none=True, metadata={"description": "the entry where the chain breaks"})
    table = fields.String(
        allow_none=True, metadata={"description": "the table of a row that differs from the chain"}
    )
    row = fields.List(
        fields.Raw(), allow_none=True, metadata={"description": "that row's key (its key columns' values)"}
    )
    rows = fields.List(
        fields.Dict(), metadata={"description": "every differing row found: table, row, problem, seq"}
    )
    entry = fields.Nested(
        BrokenEntryOut, allow_none=True, metadata={"description": "what is stored at that place, if anything"}
    )


class CheckpointOut(StrictSchema):
    checkpoint = fields.String(
        required=True, metadata={"description": "compact JWS, typ audit-checkpoint+jwt"}
    )
    seq = fields.Integer(required=True)
    hash = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    kid = fields.String(allow_none=True)


class EntriesQuery(StrictSchema):
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=2**31 - 1),  # the column's range: more is a 400, not a 500
        metadata={"description": "return entries with a greater sequence number"},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class HeadOut(StrictSchema):
    seq = fields.Integer()
    hash = fields.String()


class EntriesOut(StrictSchema):
    entries = fields.List(fields.Nested(EntryOut))
    next_after = fields.Integer(
        allow_none=True, metadata={"description": "pass as ?after= for the next page; null on the last page"}
    )
    head = fields.Nested(HeadOut)
