"""The tamper-evident audit log (scope audit:read): verify, checkpoint, export."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from consent_service.core.audit_chain import Verification
from consent_service.core.permissions import Scope
from consent_service.schemas.audit import CheckpointOut, EntriesOut, EntriesQuery, VerificationOut, VerifyIn
from consent_service.services import audit as cases
from consent_service.views.common import ApiBlueprint, caller_with, now, services

blp = ApiBlueprint("audit", __name__, url_prefix="/v1/audit", description="Audit log (scope audit:read)")


@blp.route("/verify")
class Verify(MethodView):
    @blp.response(200, VerificationOut)
    def get(self) -> Verification:
        """Walk the whole chain; ``ok`` false names the first entry that was changed, removed,
        inserted or moved, or says the tail was cut off (the head row disagrees)."""
        caller = caller_with(Scope.AUDIT_READ)
        return cases.verify(services(), caller=caller)

    @blp.arguments(VerifyIn)
    @blp.response(200, VerificationOut)
    def post(self, body: dict[str, Any]) -> Verification:
        """As GET, and also check that every given signed checkpoint is still on the chain."""
        caller = caller_with(Scope.AUDIT_READ)
        return cases.verify(services(), caller=caller, checkpoint_tokens=body["checkpoints"])


@blp.route("/checkpoint")
class Checkpoint(MethodView):
    @blp.response(200, CheckpointOut)
    def get(self) -> cases.Checkpoint:
        """A signed (sequence number, head hash): keep it outside the database."""
        caller = caller_with(Scope.AUDIT_READ)
        return cases.checkpoint(services(), caller=caller, now=now())


@blp.route("/entries")
class Entries(MethodView):
    @blp.arguments(EntriesQuery, location="query")
    @blp.response(200, EntriesOut)
    def get(self, query: dict[str, Any]) -> cases.EntriesPage:
        """The chain in sequence order, one page at a time (follow ``next_after``)."""
        caller = caller_with(Scope.AUDIT_READ)
        return cases.entries(services(), caller=caller, after=query["after"], limit=query["limit"])
