"""What the deployment policy refuses when a consent is recorded or amended.

Checked after the codes are known to exist and before anything is written:

1. ``evidence.setting`` must be a setting of the deployment (left out: ``other``);
2. a protected purpose, or a parent code that would cover one, is 400 ``protected_purpose``
   unless the deployment allows that purpose and every one of its conditions holds (the
   purpose named itself, the person's confirmation, the evidence method, a witness, the setting);
3. a crisis setting grants only its own purposes (and their children): 400 ``crisis_setting``
   naming every purpose refused.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from consent_service.core.deployment import DEFAULT_SETTING, DeploymentPolicy, Setting
from consent_service.errors import CrisisSettingRefused, ProtectedPurposeRefused, ValidationFailed


def setting_of(policy: DeploymentPolicy, evidence: Mapping[str, Any]) -> Setting:
    """The setting the evidence names (``other`` when it names none); 400 naming evidence.setting."""
    code = evidence.get("setting") or DEFAULT_SETTING
    setting = policy.setting(code)
    if setting is None:
        raise ValidationFailed(
            f"evidence.setting names an unknown setting: {code}",
            details={
                "evidence": [f"setting: unknown setting {code!r} (known: {', '.join(policy.settings)})"]
            },
        )
    return setting


def protected_granted(policy: DeploymentPolicy, purposes: Iterable[str]) -> list[str]:
    """The protected purposes a consent naming ``purposes`` grants (named themselves)."""
    return [code for code in dict.fromkeys(purposes) if code in policy.protected_purposes]


def check(policy: DeploymentPolicy, *, purposes: Iterable[str], evidence: Mapping[str, Any]) -> Setting:
    """Raise unless the deployment policy lets a consent with these terms be recorded."""
    purposes = list(dict.fromkeys(purposes))
    setting = setting_of(policy, evidence)
    problems: list[str] = []
    refused: list[str] = []
    for purpose in purposes:
        for protected in policy.covering_protected.get(purpose, ()):
            rule = policy.protected_purposes[protected]
            if purpose != protected:
                problems.append(
                    f"{purpose} would cover protected purpose {protected}; "
                    "a consent may grant a protected purpose only by naming it"
                )
            elif not rule.allowed:
                problems.append(f"protected purpose: {protected} (this deployment never allows it)")
            else:
                problems.extend(
                    _unmet(
                        rule.code,
                        rule.evidence_methods,
                        rule.witness_required,
                        rule.settings,
                        setting,
                        evidence,
                    )
                )
            refused.append(protected)
    if problems:
        raise ProtectedPurposeRefused(
            f"A consent may not grant {', '.join(dict.fromkeys(refused))} here: it is a protected purpose.",
            details={"purposes": problems},
        )
    outside = [purpose for purpose in purposes if not setting.may_grant(purpose)]
    if outside:
        raise CrisisSettingRefused(
            f"Consent given in a crisis setting ({setting.code}) may grant only "
            f"{', '.join(setting.purposes)}; refused: {', '.join(outside)}.",
            details={"purposes": [f"not granted in crisis setting {setting.code}: {p}" for p in outside]},
        )
    return setting


def _person(name: Any) -> str:
    """A worker's name as compared: NFC, case-folded, inner white space collapsed, so the same
    worker typed as "Worker-17" and "worker-17 " is never their own witness."""
    return " ".join(unicodedata.normalize("NFC", str(name or "")).casefold().split())


def _unmet(
    code: str,
    methods: tuple[str, ...],
    witness_required: bool,
    settings: tuple[str, ...],
    setting: Setting,
    evidence: Mapping[str, Any],
) -> list[str]:
    """The conditions of an allowed protected purpose that this evidence does not meet."""
    unmet = []
    if code not in (evidence.get("confirmed_protected_purposes") or ()):
        unmet.append(
            f"{code}: the person's explicit confirmation is missing (evidence.confirmed_protected_purposes)"
        )
    if evidence.get("method") not in methods:
        unmet.append(f"{code}: evidence.method must be {' or '.join(methods)}")
    witness = _person(evidence.get("witness"))
    if witness_required and (not witness or witness == _person(evidence.get("obtained_by"))):
        unmet.append(f"{code}: a second worker must witness it (evidence.witness, not obtained_by)")
    if setting.crisis:
        unmet.append(f"{code}: never granted in a crisis setting ({setting.code})")
    elif settings and setting.code not in settings:
        unmet.append(f"{code}: granted only in {', '.join(settings)} (evidence.setting is {setting.code})")
    return unmet


def offered_purposes(policy: DeploymentPolicy, purposes: Iterable[str], setting: Setting) -> list[str]:
    """Of ``purposes`` (vocabulary codes, in order), those a consent given in ``setting`` may grant
    without a protected-purpose step: what an intake form offers once the setting is known."""
    return [code for code in purposes if setting.may_grant(code) and code not in policy.covering_protected]
