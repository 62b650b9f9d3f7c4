"""The deployment policy, read from policies/deployment.toml at start (data, not Python).

It says what a consent may never grant here (protected purposes, unless allowed under stated
conditions), where consent is given (settings; crisis settings grant only a short list of
purposes), and what every permit carries (default obligations, and obligations per sensitive
category). The whole file is checked before the service starts: a malformed file, an unknown
key or a code that is not in the vocabulary raises :class:`DeploymentPolicyError` naming the
line, so the service never runs with half a policy.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consent_service.core import obligations as obligation_list
from consent_service.core.vocabulary import Vocabulary
from consent_service.core.wire import EvidenceMethod

FILE_NAME = "deployment.toml"
DEFAULT_SETTING = "other"
SOURCE = "deployment"
_TOP_KEYS = {
    "default_obligations",
    "category_obligations",
    "protected_purposes",
    "crisis_purposes",
    "settings",
}
_PROTECTED_KEYS = {"allowed", "evidence_methods", "witness_required", "settings"}
_SETTING_KEY = re.compile(r"^(label|label_[a-z]{2}|description|description_[a-z]{2}|crisis|purposes)$")
_CATEGORY_KEYS = {"category", "except_purposes", "obligations"}


class DeploymentPolicyError(ValueError):
    """policies/deployment.toml is malformed or names something unknown: the service does not start."""


@dataclass(frozen=True)
class Setting:
    """Where consent was given. A crisis setting grants only ``purposes`` (children included)."""

    code: str
    label: str
    labels: dict[str, str] = field(default_factory=dict)  # language -> label
    crisis: bool = False
    purposes: tuple[str, ...] = ()  # as written in the policy (a crisis setting's list)
    allowed: frozenset[str] = frozenset()  # ``purposes`` and every child of them

    def label_in(self, language: str) -> str:
        return self.labels.get(language, self.label)

    def may_grant(self, purpose: str) -> bool:
        return not self.crisis or purpose in self.allowed


@dataclass(frozen=True)
class ProtectedPurpose:
    """A purpose a consent may not grant unless ``allowed``, and then only when every condition holds.

    The person's explicit confirmation (``evidence.confirmed_protected_purposes`` naming the
    purpose) is always one of the conditions.
    """

    code: str
    allowed: bool = False
    evidence_methods: tuple[str, ...] = ("written",)
    witness_required: bool = True
    settings: tuple[str, ...] = ()  # where it may be granted; empty: any setting that is not crisis


@dataclass(frozen=True)
class CategoryObligation:
    category: str
    except_purposes: tuple[str, ...]
    obligations: Mapping[str, Any]
    exempt: frozenset[str] = frozenset()  # ``except_purposes`` and every child of them


@dataclass(frozen=True)
class DeploymentPolicy:
    default_obligations: tuple[str, ...]
    category_obligations: tuple[CategoryObligation, ...]
    protected_purposes: dict[str, ProtectedPurpose]
    settings: dict[str, Setting]
    crisis_purposes: tuple[str, ...]
    # Every purpose a consent naming it would cover a protected purpose (protected ones and
    # their ancestors) -> the protected purposes it covers.
    covering_protected: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def refused_purposes(self) -> frozenset[str]:
        """Protected purposes the deployment does not allow: no consent ever covers them."""
        return frozenset(code for code, p in self.protected_purposes.items() if not p.allowed)

    def setting(self, code: str | None) -> Setting | None:
        """The setting (``None`` -> ``other``); ``None`` when the code is not a setting."""
        return self.settings.get(code or DEFAULT_SETTING)

    def obligations_for(self, purpose: str, categories: Iterable[str]) -> tuple[dict[str, Any], ...]:
        """What the deployment attaches to a permit of ``purpose`` over ``categories`` (wire form)."""
        items: list[dict[str, Any]] = [{"code": name, "source": SOURCE} for name in self.default_obligations]
        wanted = set(categories)
        for rule in self.category_obligations:
            if rule.category in wanted and purpose not in rule.exempt:
                items.extend(obligation_list.as_list(rule.obligations, source=SOURCE, category=rule.category))
        return tuple(items)


def _line_of(text: str, *needles: str) -> int:
    """The first line (1-based) holding the first of ``needles`` found (most precise first); 0: none."""
    lines = text.splitlines()
    for needle in needles:
        for number, line in enumerate(lines, start=1):
            if needle and needle in line:
                return number
    return 0


class _Reader:
    def __init__(
        self, path: Path, text: str, vocabulary: Vocabulary, descendants: Mapping[str, frozenset[str]]
    ) -> None:
        self.path, self.text, self.vocabulary, self.descendants = path, text, vocabulary, descendants

    def fail(self, message: str, *needles: str) -> DeploymentPolicyError:
        line = _line_of(self.text, *needles) if needles else 0
        where = f"{self.path}, line {line}" if line else str(self.path)
        return DeploymentPolicyError(f"{where}: {message}")

    def strings(self, value: Any, what: str, needle: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{what} must be a list of strings", needle)
        return tuple(value)

    def purposes(self, value: Any, what: str, needle: str) -> tuple[str, ...]:
        codes = self.strings(value, what, needle)
        for code in codes:
            if code not in self.vocabulary.purposes:
                raise self.fail(f"{what} names unknown purpose {code!r}", f'"{code}"', needle)
        return codes

    def expand(self, codes: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for code in codes:
            out |= self.descendants.get(code, frozenset((code,)))
        return frozenset(out)

    def table(self, value: Any, what: str, needle: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} must be a table", needle)
        return value

    def unknown_keys(
        self, entry: Mapping[str, Any], allowed: Iterable[str] | re.Pattern[str], what: str, needle: str
    ) -> None:
        for key in entry:
            ok = allowed.match(key) if isinstance(allowed, re.Pattern) else key in set(allowed)
            if not ok:
                raise self.fail(f"{what}: unknown key {key!r}", f"{key} =", f"{key}=", needle)


def load_deployment(
    policies_dir: Path | str, vocabulary: Vocabulary, descendants: Mapping[str, frozenset[str]]
) -> DeploymentPolicy:
    """Read and check policies/deployment.toml; ``descendants`` maps a purpose to itself and its children."""
    path = Path(policies_dir) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeploymentPolicyError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message says "(at line N, column M)"
        raise DeploymentPolicyError(f"{path}: not valid TOML: {exc}") from exc
    reader = _Reader(path, text, vocabulary, descendants)
    reader.unknown_keys(raw, _TOP_KEYS, "the deployment policy", "")
    crisis_purposes = reader.purposes(
        raw.get("crisis_purposes", ["service-delivery"]), "crisis_purposes", "crisis_purposes"
    )
    protected = _protected(reader, raw.get("protected_purposes", {}))
    settings = _settings(reader, raw.get("settings", {}), crisis_purposes)
    return DeploymentPolicy(
        default_obligations=_default_obligations(reader, raw.get("default_obligations", [])),
        category_obligations=_category_obligations(reader, raw.get("category_obligations", [])),
        protected_purposes=protected,
        settings=settings,
        crisis_purposes=crisis_purposes,
        covering_protected=_covering(reader, protected, settings),
    )


def _default_obligations(reader: _Reader, value: Any) -> tuple[str, ...]:
    names = reader.strings(value, "default_obligations", "default_obligations")
    for name in names:
        if name not in (flags := obligation_list.plain_flags()):
            raise reader.fail(
                f"default_obligations: {name!r} is not an obligation without parameters "
                f"(known: {', '.join(flags)})",
                f'"{name}"',
                "default_obligations",
            )
    return names


def _category_obligations(reader: _Reader, value: Any) -> tuple[CategoryObligation, ...]:
    if not isinstance(value, list):
        raise reader.fail(
            "category_obligations must be an array of tables ([[category_obligations]])",
            "category_obligations",
        )
    out = []
    for entry in value:
        entry = reader.table(entry, "each [[category_obligations]]", "[[category_obligations]]")
        reader.unknown_keys(entry, _CATEGORY_KEYS, "[[category_obligations]]", "[[category_obligations]]")
        category = entry.get("category")
        if not isinstance(category, str) or category not in reader.vocabulary.data_categories:
            raise reader.fail(
                f"category_obligations: unknown data category {category!r}",
                f'"{category}"',
                "[[category_obligations]]",
            )
        except_purposes = reader.purposes(
            entry.get("except_purposes", []), "category_obligations.except_purposes", "except_purposes"
        )
        obligations = reader.table(
            entry.get("obligations"), "category_obligations.obligations", "obligations"
        )
        if not obligations or (problems := obligation_list.problems(obligations)):
            raise reader.fail(
                f"category_obligations for {category!r}: "
                f"{'; '.join(problems) if obligations else 'no obligations'}",
                "obligations",
            )
        out.append(
            CategoryObligation(
                category=category,
                except_purposes=except_purposes,
                obligations=dict(obligations),
                exempt=reader.expand(except_purposes),
            )
        )
    return tuple(out)


def _protected(reader: _Reader, value: Any) -> dict[str, ProtectedPurpose]:
    out: dict[str, ProtectedPurpose] = {}
    for code, entry in reader.table(value, "protected_purposes", "protected_purposes").items():
        needle = f"[protected_purposes.{code}]"
        if code not in reader.vocabulary.purposes:
            raise reader.fail(f"protected_purposes names unknown purpose {code!r}", needle, f'"{code}"')
        entry = reader.table(entry, needle, needle)
        reader.unknown_keys(entry, _PROTECTED_KEYS, needle, needle)
        allowed = entry.get("allowed", False)
        witness = entry.get("witness_required", True)
        if not isinstance(allowed, bool) or not isinstance(witness, bool):
            raise reader.fail(f"{needle}: allowed and witness_required must be true or false", needle)
        methods = reader.strings(
            entry.get("evidence_methods", ["written"]), f"{needle} evidence_methods", "evidence_methods"
        )
        for method in methods:
            if method not in {str(m) for m in EvidenceMethod}:
                raise reader.fail(f"{needle}: unknown evidence method {method!r}", f'"{method}"')
        out[code] = ProtectedPurpose(
            code=code,
            allowed=allowed,
            evidence_methods=methods,
            witness_required=witness,
            settings=reader.strings(entry.get("settings", []), f"{needle} settings", "settings ="),
        )
    return out


def _settings(reader: _Reader, value: Any, crisis_purposes: tuple[str, ...]) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for code, entry in reader.table(value, "settings", "[settings").items():
        needle = f"[settings.{code}]"
        entry = reader.table(entry, needle, needle)
        reader.unknown_keys(entry, _SETTING_KEY, needle, needle)
        crisis = entry.get("crisis", False)
        if not isinstance(crisis, bool):
            raise reader.fail(f"{needle}: crisis must be true or false", needle)
        purposes = (
            reader.purposes(entry["purposes"], f"{needle} purposes", needle)
            if "purposes" in entry
            else crisis_purposes
            if crisis
            else ()
        )
        labels = {k.removeprefix("label_"): str(v) for k, v in entry.items() if k.startswith("label_")}
        out[code] = Setting(
            code=code,
            label=str(entry.get("label", code)),
            labels=labels,
            crisis=crisis,
            purposes=purposes,
            allowed=reader.expand(purposes) if crisis else frozenset(),
        )
    if DEFAULT_SETTING not in out:
        raise reader.fail(
            f"settings must include {DEFAULT_SETTING!r} (evidence without a setting is read as it)",
            "[settings",
        )
    return out


def _covering(
    reader: _Reader, protected: Mapping[str, ProtectedPurpose], settings: Mapping[str, Setting]
) -> dict[str, tuple[str, ...]]:
    """Check the protected purposes against the settings; map every purpose covering one to them."""
    covering: dict[str, list[str]] = {}
    for code, rule in protected.items():
        for where in rule.settings:
            if where not in settings:
                raise reader.fail(
                    f"[protected_purposes.{code}] names unknown setting {where!r}", f'"{where}"'
                )
            if settings[where].crisis:
                raise reader.fail(
                    f"[protected_purposes.{code}] names crisis setting {where!r}: a protected "
                    "purpose is never granted in a crisis setting",
                    f'"{where}"',
                )
        for setting in settings.values():
            if code in setting.allowed:
                raise reader.fail(
                    f"crisis setting {setting.code!r} would grant protected purpose {code!r}",
                    f"[settings.{setting.code}]",
                    "crisis_purposes",
                )
        for purpose, below in reader.descendants.items():
            if code in below:
                covering.setdefault(purpose, []).append(code)
    return {purpose: tuple(codes) for purpose, codes in covering.items()}
