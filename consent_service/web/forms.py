"""The web pages' forms (Flask-WTF): each parses a posted form's shape and turns its data into
the body the API takes; the API's own marshmallow schema then checks what the body means.

A form checks only what a page can say better than the API: a field left empty, a date or a
number that does not parse. Everything else (which codes exist, what a rule may say) is the
schema's, whose messages come back under the form's fields (:func:`loaded`, :func:`flatten`),
so the pages accept exactly what the API would. CSRF is not a form's: every unsafe request of
the web pages is checked before its view runs (``web.session.check_csrf``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import Field, Form, SelectMultipleField, StringField
from wtforms.validators import StopValidation

from consent_service.services.rules import NO_CONDITIONS_ON_REFUSAL
from consent_service.web.i18n import translate
from consent_service.web.words import N_, OBLIGATIONS

Errors = dict[str, list[str]]

# Form field for each field of the API body, where they differ.
FORM_FIELD = {
    "subject.system": "system",
    "subject.value": "value",
    "evidence.method": "method",
    "evidence.obtained_by": "obtained_by",
    "evidence.notes": "notes",
    "evidence.setting": "setting",
    "evidence.witness": "witness",
    "evidence.confirmed_protected_purposes": "confirm",
    "expires_at": "valid_until",
}


def _stripped(value: str | None) -> str:
    return (value or "").strip()


def _as_given(value: str | None) -> str:
    return value or ""


class Given:
    """The field has a value, else ``message`` (and no further check of it). ``strip``: spaces
    alone are no value (the value itself is kept as typed)."""

    def __init__(self, message: str, *, strip: bool = False) -> None:
        self.message = message
        self.strip = strip

    def __call__(self, form: Form, field: Field) -> None:
        data = field.data
        if not (data.strip() if self.strip and isinstance(data, str) else data):
            raise StopValidation(self.message)


class Codes(SelectMultipleField):
    """Every value ticked, as given: which codes exist is the API schema's to say."""

    def __init__(self, *validators: Any, **kwargs: Any) -> None:
        super().__init__(validators=list(validators), validate_choice=False, **kwargs)


class Day(Field):
    """A date typed as YYYY-MM-DD, or nothing (None)."""

    data: date | None

    def process_formdata(self, valuelist: list[Any]) -> None:
        raw = _stripped(valuelist[0] if valuelist else None)
        self.data = None
        if raw:
            try:
                self.data = date.fromisoformat(raw)
            except ValueError as exc:
                raise ValueError(N_("Give a date, or leave it empty.")) from exc


class WholeNumber(Field):
    """A whole number, or nothing (None)."""

    data: int | None

    def process_formdata(self, valuelist: list[Any]) -> None:
        raw = _stripped(valuelist[0] if valuelist else None)
        self.data = None
        if raw:
            try:
                self.data = int(raw)
            except ValueError as exc:
                raise ValueError(N_("Give a whole number.")) from exc


class WebForm(FlaskForm):
    """A page's form. Its fields are declared in the order their messages are listed."""

    class Meta:
        csrf = False  # checked for every unsafe request before the view (web.session.check_csrf)

    def problems(self) -> Errors:
        """The form's own complaints, in the page's language, under its field names."""
        self.validate()
        return {str(name): [translate(m) for m in messages] for name, messages in self.errors.items()}


def end_of_day(day: date, zone: tzinfo) -> str:
    """A date typed in the form as the moment it ends in the deployment's time zone (the start of
    the next day there), in UTC, ISO 8601."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC).isoformat()


class ConsentForm(WebForm):
    """Recording a consent (the intake form and its confirmation step): ``ConsentIn``'s body."""

    valid_until = Day()
    system = StringField(filters=[_stripped], validators=[Given(N_("Give the identifier system."))])
    value = StringField(filters=[_stripped], validators=[Given(N_("Give the person's identifier."))])
    purposes = Codes(Given(N_("Tick at least one use.")))
    data_categories = Codes(Given(N_("Tick at least one kind of information.")))
    recipients = Codes(Given(N_("Tick at least one organization.")))
    method = StringField(
        filters=[_as_given], validators=[Given(N_("Say how consent was obtained."), strip=True)]
    )
    obtained_by = StringField(filters=[_stripped], validators=[Given(N_("Say who took the consent."))])
    communities = Codes()
    notes = StringField(filters=[_stripped])
    setting = StringField(filters=[_stripped])
    witness = StringField(filters=[_stripped])
    confirmed_protected_purposes = Codes()

    def body(self, zone: tzinfo) -> dict[str, Any]:
        evidence: dict[str, Any] = {"method": self.method.data, "obtained_by": self.obtained_by.data}
        if self.notes.data:
            evidence["notes"] = self.notes.data
        evidence["setting"] = self.setting.data
        if self.witness.data:
            evidence["witness"] = self.witness.data
        if self.confirmed_protected_purposes.data:
            evidence["confirmed_protected_purposes"] = self.confirmed_protected_purposes.data
        body: dict[str, Any] = {
            "subject": {"system": self.system.data, "value": self.value.data},
            "communities": self.communities.data,
            "purposes": self.purposes.data,
            "data_categories": self.data_categories.data,
            "recipients": self.recipients.data,
            "evidence": evidence,
        }
        if self.valid_until.data is not None:
            body["expires_at"] = end_of_day(self.valid_until.data, zone)
        return body


class RuleForm(WebForm):
    """A community's new rule, previewed then saved: ``RuleIn``'s body."""

    min_cell_size = WholeNumber()
    retention_days = WholeNumber()
    effect = StringField(filters=[_as_given], validators=[Given(N_("Choose what the rule does."))])
    purposes = Codes(Given(N_("Tick at least one use.")))
    data_categories = Codes(Given(N_("Tick at least one kind of information.")))
    requesters = Codes(Given(N_("Tick at least one organization, or any organization.")))
    reason = StringField(
        filters=[_stripped], validators=[Given(N_("Give the reason, in words the requesters will read."))]
    )
    obligations = Codes()
    labels = Codes()

    def body(self) -> dict[str, Any]:
        obligations: dict[str, Any] = {name: True for name in self.obligations.data if name in OBLIGATIONS}
        for number in (self.min_cell_size, self.retention_days):
            if number.data is not None:
                obligations[number.name] = number.data
        return {
            "effect": self.effect.data,
            "purposes": self.purposes.data,
            "data_categories": self.data_categories.data,
            "requesters": self.requesters.data,
            "obligations": obligations,
            "labels": self.labels.data,
            "reason": self.reason.data,
        }


class ApprovalForm(WebForm):
    """A community's approval, from its approvals page or a waiting request: ``ApprovalIn``'s body."""

    valid_until = Day()
    requester = StringField(filters=[_as_given], validators=[Given(N_("Choose the organization."))])
    purposes = Codes(Given(N_("Tick at least one use.")))
    data_categories = Codes(Given(N_("Tick at least one kind of information.")))
    notes = StringField(filters=[_stripped])

    def body(self, zone: tzinfo) -> dict[str, Any]:
        body: dict[str, Any] = {
            "requester": self.requester.data,
            "purposes": self.purposes.data,
            "data_categories": self.data_categories.data,
            "notes": self.notes.data or None,
        }
        if self.valid_until.data is not None:
            body["expires_at"] = end_of_day(self.valid_until.data, zone)
        return body


# The API's messages (the schemas' and the use cases'), as the pages say them: one set of
# per-field messages, translated. ``field`` moves a message under the form field it is about
# (an obligation's number has its own field on the rule form); ``{value}`` is what the
# message named. A message not listed is shown as the API gave it.
API_MESSAGES: list[tuple[re.Pattern[str], str | None, str]] = [
    (re.compile(r"^unknown purpose: (?P<value>.+)$"), None, N_("“{value}” is not a use this service knows.")),
    (
        re.compile(r"^unknown data category: (?P<value>.+)$"),
        None,
        N_("“{value}” is not a kind of information this service knows."),
    ),
    (
        re.compile(r"^unknown organization: (?P<value>.+)$"),
        None,
        N_("“{value}” is not an organization this service knows."),
    ),
    (
        re.compile(r"^not a Local Contexts label or notice: (?P<value>.+)$"),
        None,
        N_("“{value}” is not a Local Contexts label or notice."),
    ),
    (
        re.compile("^" + re.escape(NO_CONDITIONS_ON_REFUSAL) + "$"),
        None,
        N_(
            "A rule that refuses carries no conditions: conditions travel only with what a rule "
            "allows. Untick them, or choose “Ask the community first”."
        ),
    ),
    (
        re.compile(r"^unknown obligation: (?P<value>.+)$"),
        None,
        N_("“{value}” is not a condition this service knows."),
    ),
    (
        re.compile(r"^min_cell_size must be a whole number of at least 1$"),
        "min_cell_size",
        N_("Give a whole number of at least 1."),
    ),
    (
        re.compile(r"^min_cell_size needs aggregate_only: true$"),
        "min_cell_size",
        N_("A smallest group needs the condition “Only as counts or totals”."),
    ),
    (
        re.compile(r"^retention_days must be a whole number of .*at least 1$"),
        "retention_days",
        N_("Give a whole number of at least 1."),
    ),
    (
        re.compile(r"^\w+ must be true \(leave it out to not impose it\)$"),
        None,
        N_("A condition is either ticked or left out."),
    ),
    (re.compile(r"^must be in the future$"), None, N_("Give a date in the future.")),
    (re.compile(r"^Missing data for required field\.$"), None, N_("Fill this in.")),
    (re.compile(r"^Must be one of: .*\.$"), None, N_("Choose one of the choices offered.")),
    (re.compile(r"^must be a code( or '\*')?$"), None, N_("Choose from the choices offered.")),
    (re.compile(r"^Unknown field\.$"), None, N_("The form sent a field the service does not take.")),
    (re.compile(r"^Shorter than minimum length \d+\.$"), None, N_("Fill this in.")),
    (
        re.compile(r"^Length must be between \d+ and (?P<value>\d+)\.$"),
        None,
        N_("Write at most {value} characters."),
    ),
    (
        re.compile(r"^Longer than maximum length (?P<value>\d+)\.$"),
        None,
        N_("Write at most {value} characters."),
    ),
]


def in_words(errors: Errors) -> Errors:
    """The API's messages in ``errors`` as the pages say them, in the page's language, each under
    the form field it is about."""
    out: Errors = {}
    for name, messages in errors.items():
        for message in messages:
            field, text = name, message
            for pattern, moved_to, wording in API_MESSAGES:
                if found := pattern.match(message):
                    field, text = moved_to or name, translate(wording, **found.groupdict())
                    break
            if text not in out.setdefault(field, []):
                out[field].append(text)
    return out


def loaded(schema: Any, body: dict[str, Any], errors: Errors) -> dict[str, Any]:
    """``body`` through the API's own request schema, unless the form already has ``errors``;
    the schema's complaints are added to ``errors`` under the form's field names."""
    if errors:
        return body
    try:
        return dict(schema.load(body))
    except ValidationError as exc:
        errors.update(flatten(exc.messages))
        return body


def flatten(messages: Any, prefix: str = "") -> Errors:
    """Marshmallow's or the domain's nested messages as ``{form field: [message, ...]}``."""
    out: Errors = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping) and not all(isinstance(k, int) for k in value):
                out.update(flatten(value, name))
            else:
                items: Iterable[Any] = value.values() if isinstance(value, Mapping) else value
                texts = [
                    str(v)
                    for item in ([items] if isinstance(items, str) else items)
                    for v in (item if isinstance(item, list) else [item])
                ]
                out.setdefault(FORM_FIELD.get(name, name), []).extend(texts)
    return out
