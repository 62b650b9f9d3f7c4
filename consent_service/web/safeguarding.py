"""The intake form's safeguards (issue 11): where consent is given decides what may be asked.

The deployment policy (``policies/deployment.toml``, ``core.deployment``) names the settings
consent is given in, the crisis settings that may grant only a short list of purposes, and the
protected purposes a consent may grant only where the deployment allows them, under its
conditions. The form asks the setting first and offers only what that setting may grant; a
protected purpose the deployment allows gets its own confirmation step. What the API refuses
(``protected_purpose``, ``crisis_setting``) is turned here into plain messages, with names, each
under the field the worker must change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.datastructures import MultiDict

from consent_service.core import safeguards
from consent_service.core.deployment import DeploymentPolicy, ProtectedPurpose, Setting
from consent_service.core.vocabulary import Term, Vocabulary
from consent_service.errors import CrisisSettingRefused, ServiceError
from consent_service.web.i18n import translate
from consent_service.web.words import N_, Words

# The fields of the confirmation step; any other problem sends the worker back to the form.
CONFIRM_FIELDS = frozenset({"witness", "confirm"})
# Words of the API's protected-purpose messages that say which condition is unmet, the form
# field it concerns, and what the worker is told (with the purpose's name).
_CONDITIONS = (
    (
        "confirmed_protected_purposes",
        "confirm",
        N_("{purpose}: the person's explicit agreement is needed. Tick the box to confirm it."),
    ),
    ("evidence.method", "method", N_("{purpose}: the consent must be {methods}.")),
    (
        "evidence.witness",
        "witness",
        N_(
            "{purpose}: a second worker must witness the consent. "
            "Give their name (not the person who took it)."
        ),
    ),
    ("crisis setting", "setting", N_("{purpose} is never agreed to in a crisis setting.")),
    ("granted only in", "setting", N_("{purpose} may be agreed to only in: {settings}.")),
)


def offered_purposes(
    deployment: DeploymentPolicy, tree: list[tuple[Term, int]], setting: Setting
) -> list[tuple[Term, int]]:
    """The purposes (as a tree) a consent given in ``setting`` may grant without a protected step."""
    offered = set(safeguards.offered_purposes(deployment, (term.code for term, _ in tree), setting))
    return [(term, depth) for term, depth in tree if term.code in offered]


def protected_offered(
    deployment: DeploymentPolicy, vocabulary: Vocabulary, setting: Setting
) -> list[tuple[Term, ProtectedPurpose]]:
    """The protected purposes the deployment allows at all, and in this setting (none in a crisis)."""
    return [
        (vocabulary.purposes[code], rule)
        for code, rule in deployment.protected_purposes.items()
        if rule.allowed
        and code in vocabulary.purposes
        and not setting.crisis
        and (not rule.settings or setting.code in rule.settings)
    ]


def protected_ticked(deployment: DeploymentPolicy, form: MultiDict[str, str]) -> list[str]:
    """The protected purposes the form asks for, each named by itself (so a confirmation is due)."""
    return [code for code in dict.fromkeys(form.getlist("purposes")) if code in deployment.protected_purposes]


def refusal(
    exc: ServiceError,
    *,
    deployment: DeploymentPolicy,
    words: Words,
    form: MultiDict[str, str],
    setting: Setting,
) -> dict[str, list[str]]:
    """A ``protected_purpose`` or ``crisis_setting`` refusal as messages under the form's fields."""
    errors: dict[str, list[str]] = {}
    purposes = list(dict.fromkeys(form.getlist("purposes")))
    if isinstance(exc, CrisisSettingRefused):
        refused = [p for p in purposes if not setting.may_grant(p)]
        errors["purposes"] = [
            translate(
                "{setting} is a crisis setting: a consent given there may only be for {allowed}. "
                "Untick {refused}; the person can agree to more later, somewhere calmer.",
                setting=setting.label_in(words.language),
                allowed=words.purposes(setting.purposes),
                refused=words.purposes(refused),
            )
        ]
        return errors
    for purpose in purposes:
        for protected in deployment.covering_protected.get(purpose, ()):
            if purpose != protected:
                message = translate(
                    "{general} would include {protected}, a protected purpose. Untick {general}; "
                    "a protected purpose is only ever asked about on its own.",
                    general=words.purpose(purpose),
                    protected=words.purpose(protected),
                )
            elif not deployment.protected_purposes[protected].allowed:
                message = translate(
                    "{protected} is a protected purpose: this service never lets a consent grant it.",
                    protected=words.purpose(protected),
                )
            else:
                continue
            errors.setdefault("purposes", []).append(message)
    for text in _messages(exc):
        code = text.split(":", 1)[0].strip()
        rule = deployment.protected_purposes.get(code)
        condition = next((c for c in _CONDITIONS if c[0] in text), None)
        if rule is None or condition is None:
            if not errors:  # a refusal this page cannot place: shown as the API words it
                errors.setdefault("purposes", []).append(text)
            continue
        _, field, wording = condition
        errors.setdefault(field, []).append(
            translate(
                wording,
                purpose=words.purpose(code),
                methods=_methods(rule, words),
                settings=_settings(deployment, rule, words),
            )
        )
    return errors or {"purposes": [exc.message]}


def conditions(deployment: DeploymentPolicy, code: str, words: Words) -> dict[str, Any]:
    """A protected purpose the deployment allows, with its conditions worded for the page."""
    rule = deployment.protected_purposes[code]
    return {
        "code": code,
        "witness_required": rule.witness_required,
        "methods": _methods(rule, words),
        "settings": _settings(deployment, rule, words),
    }


def _methods(rule: ProtectedPurpose, words: Words) -> str:
    """How the person must agree: "written and signed", or a list joined with "or"."""
    return words.join([words.method(m).lower() for m in rule.evidence_methods], last=translate("or"))


def _settings(deployment: DeploymentPolicy, rule: ProtectedPurpose, words: Words) -> str:
    return words.join([_setting_name(deployment, s, words) for s in rule.settings], last=translate("or"))


def _messages(exc: ServiceError) -> list[str]:
    details: Mapping[str, Any] = exc.details or {}
    return [str(m) for m in details.get("purposes", [])]


def _setting_name(deployment: DeploymentPolicy, code: str, words: Words) -> str:
    setting = deployment.setting(code)
    return setting.label_in(words.language) if setting else code


def carried(form: MultiDict[str, str], *, leave_out: Iterable[str]) -> list[tuple[str, str]]:
    """The form's fields to carry through a step as hidden inputs (never its CSRF token)."""
    skip = {"csrf_token", "step", *leave_out}
    return [(name, value) for name, value in form.items(multi=True) if name not in skip]
