"""Obligations a community rule may attach to what it allows, and how they are returned.

The vocabulary is data: policies/obligations.toml names each obligation, the kind of value it
takes, the parameters it may carry and their types, and its wording in English and French.
This module reads that file once (the service's own copy: the engine and the batch use case
implement what the codes mean, so a deployment does not add codes) and judges rules by it;
the API's description of ``obligations``, the deployment policy's check and the pages'
wording read it from here.

A rule stores them as a small object (``{"aggregate_only": true, "min_cell_size": 10}``);
a permit returns each as ``{"code": ..., <parameters>, "rule_id", "community"}`` so the
recipient can tell which community asked for what. The deployment policy's obligations
(policies/deployment.toml) come as ``{"code": ..., <parameters>, "source": "deployment"}``,
with ``"category"`` when a sensitive category brought them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE = Path(__file__).resolve().parents[2] / "policies" / "obligations.toml"
LOCAL_CONTEXTS = "local_contexts"
_TYPES: dict[str, type] = {"int": int}


@dataclass(frozen=True)
class Wording:
    """A phrase in each language; ``{name}`` placeholders take a value or a parameter."""

    en: str
    fr: str

    def pick(self, language: str) -> str:
        return self.fr if language == "fr" else self.en


@dataclass(frozen=True)
class Parameter:
    name: str
    type: type
    label: Wording
    description: Wording


@dataclass(frozen=True)
class Obligation:
    """One code of policies/obligations.toml.

    ``returned_as`` is ``None`` for a flag (the rule says ``true``); for a number-valued
    obligation (``retention_days``) it is the key the permit carries the number under.
    """

    code: str
    label: Wording
    description: Wording
    returned_as: str | None = None
    parameters: dict[str, Parameter] = field(default_factory=dict)

    @property
    def is_flag(self) -> bool:
        return self.returned_as is None


class ObligationsFileError(ValueError):
    """policies/obligations.toml is not as its header describes: the service does not start."""


def _wording(entry: Mapping[str, Any], key: str, where: str) -> Wording:
    en, fr = entry.get(key), entry.get(f"{key}_fr")
    if not isinstance(en, str) or not isinstance(fr, str):
        raise ObligationsFileError(f"{where}: needs {key} and {key}_fr (text)")
    return Wording(en=en, fr=fr)


def load(path: Path = FILE) -> dict[str, Obligation]:
    """Read and check the obligations vocabulary: code -> :class:`Obligation`, in file order."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    out: dict[str, Obligation] = {}
    for code, entry in raw.items():
        where = f"{path.name} [{code}]"
        if not isinstance(entry, dict) or entry.get("value") not in ("flag", "int"):
            raise ObligationsFileError(f'{where}: value must be "flag" or "int"')
        returned_as = entry.get("returned_as") if entry["value"] == "int" else None
        if entry["value"] == "int" and not isinstance(returned_as, str):
            raise ObligationsFileError(f'{where}: an "int" value needs returned_as')
        parameters = {}
        for name, param in entry.get("parameters", {}).items():
            if not isinstance(param, dict) or param.get("type") not in _TYPES:
                raise ObligationsFileError(f"{where}.parameters.{name}: type must be one of {sorted(_TYPES)}")
            parameters[name] = Parameter(
                name=name,
                type=_TYPES[param["type"]],
                label=_wording(param, "label", f"{where}.parameters.{name}"),
                description=_wording(param, "description", f"{where}.parameters.{name}"),
            )
        out[code] = Obligation(
            code=code,
            label=_wording(entry, "label", where),
            description=_wording(entry, "description", where),
            returned_as=returned_as,
            parameters=parameters,
        )
    return out


VOCABULARY: dict[str, Obligation] = load()
# name -> the parameters it may carry (name: type); a flag without parameters carries none.
KNOWN: dict[str, dict[str, type]] = {
    code: {name: p.type for name, p in obligation.parameters.items()}
    for code, obligation in VOCABULARY.items()
}
PARAMETERS = {param for params in KNOWN.values() for param in params}


def plain_flags() -> list[str]:
    """The obligations that are a bare ``true`` (no value, no parameter): what the deployment
    policy's ``default_obligations`` may name."""
    return sorted(code for code, o in VOCABULARY.items() if o.is_flag and not o.parameters)


def describe() -> str:
    """What a rule's ``obligations`` object may hold, for the API description."""
    parts = []
    for code, obligation in VOCABULARY.items():
        value = "true" if obligation.is_flag else "a whole number"
        params = "".join(f" (with {name}: a whole number)" for name in obligation.parameters)
        parts.append(f"{code}: {value}{params}")
    return "e.g. {'aggregate_only': true, 'min_cell_size': 10}. Known: " + "; ".join(parts)


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def problems(obligations: Mapping[str, Any]) -> list[str]:
    """What is wrong with a rule's (or the deployment policy's) obligations, judged against the file.

    A flag must be ``true`` (leave it out to not impose it); a parameter such as
    ``min_cell_size`` needs its obligation; ``retention_days`` is a number of days. Anything
    the engine would silently drop is refused here, so a community never believes it asked
    for something that will not travel with a permit.
    """
    found = []
    for name, value in obligations.items():
        owners = [owner for owner, params in KNOWN.items() if name in params]
        if name in PARAMETERS:
            if not positive_int(value):
                found.append(f"{name} must be a whole number of at least 1")
            if not any(obligations.get(owner) is True for owner in owners):
                found.append(f"{name} needs {' or '.join(owners)}: true")
        elif name in VOCABULARY and not VOCABULARY[name].is_flag:
            if not positive_int(value):
                found.append(f"{name} must be a whole number of {VOCABULARY[name].returned_as}, at least 1")
        elif name in KNOWN:
            if value is not True:
                found.append(f"{name} must be true (leave it out to not impose it)")
        else:
            found.append(f"unknown obligation: {name}")
    return found


def as_list(
    obligations: Mapping[str, Any],
    *,
    labels: tuple[str, ...] = (),
    rule_id: str | None = None,
    community: str | None = None,
    **source: str,
) -> list[dict[str, Any]]:
    """Turn a rule's stored obligations into the wire list, in a stable order.

    A rule's items name ``rule_id`` and ``community``; the deployment policy's name what
    ``source`` gives instead (``source="deployment"``, ``category=...``).
    """
    out: list[dict[str, Any]] = []
    for name in sorted(obligations):
        if name in PARAMETERS:
            continue
        value = obligations[name]
        returned_as = VOCABULARY[name].returned_as if name in VOCABULARY else None
        if returned_as is not None:
            item: dict[str, Any] = {"code": name, returned_as: value}
        elif value is True:
            item = {"code": name}
            for param in KNOWN.get(name, {}):
                if param in obligations:
                    item[param] = obligations[param]
        else:
            continue
        item.update({"rule_id": rule_id, "community": community} if rule_id is not None else source)
        out.append(item)
    if labels:
        out.append(
            {"code": LOCAL_CONTEXTS, "labels": list(labels), "rule_id": rule_id, "community": community}
        )
    return out
