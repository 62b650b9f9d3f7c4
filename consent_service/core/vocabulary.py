"""The purposes and data categories, read from policies/vocabulary.toml.

The vocabulary is data: a deployment adds codes by editing that file. A parent code covers
its descendants; a child never covers its parent or siblings (see ``policy.Hierarchy``).
A ``sensitive`` code (nationality, Indigenous identity) stands alone: the loader refuses one
with a parent or with children, so only a consent or rule naming it (or a rule's ``*``) covers it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Term:
    code: str
    parent: str | None
    label: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # language -> label
    descriptions: dict[str, str] = field(default_factory=dict)
    sensitive: bool = False

    def label_in(self, language: str) -> str:
        return self.labels.get(language, self.label)

    def description_in(self, language: str) -> str:
        return self.descriptions.get(language, self.description)


@dataclass(frozen=True)
class Vocabulary:
    purposes: dict[str, Term]
    data_categories: dict[str, Term]

    @property
    def sensitive_categories(self) -> frozenset[str]:
        return frozenset(code for code, term in self.data_categories.items() if term.sensitive)


class VocabularyError(ValueError):
    """The vocabulary file is malformed; the service refuses to start rather than guess."""


def _terms(section: dict[str, dict[str, object]], kind: str) -> dict[str, Term]:
    terms: dict[str, Term] = {}
    for code, entry in section.items():
        if code == "*" or not code.strip():
            raise VocabularyError(f"{kind}: {code!r} is not a usable code")
        labels = {k.removeprefix("label_"): str(v) for k, v in entry.items() if k.startswith("label_")}
        descriptions = {
            k.removeprefix("description_"): str(v) for k, v in entry.items() if k.startswith("description_")
        }
        sensitive = entry.get("sensitive", False)
        if not isinstance(sensitive, bool):
            raise VocabularyError(f"{kind}: {code!r} has sensitive = {sensitive!r}; it must be true or false")
        parent = entry.get("parent")
        terms[code] = Term(
            code=code,
            parent=None if parent is None else str(parent),
            label=str(entry.get("label", code)),
            description=str(entry.get("description", "")),
            labels=labels,
            descriptions=descriptions,
            sensitive=sensitive,
        )
    for term in terms.values():
        if term.parent is not None and term.parent not in terms:
            raise VocabularyError(f"{kind}: {term.code!r} names unknown parent {term.parent!r}")
        if term.sensitive and term.parent is not None:
            raise VocabularyError(
                f"{kind}: {term.code!r} is sensitive and may not have a parent "
                f"(it names {term.parent!r}); a sensitive category stands alone"
            )
        if term.parent is not None and terms[term.parent].sensitive:
            raise VocabularyError(
                f"{kind}: {term.code!r} names sensitive {term.parent!r} as its parent; "
                "a sensitive category may not have children"
            )
    for term in terms.values():  # reject cycles: every chain of parents must end
        seen = {term.code}
        parent = term.parent
        while parent is not None:
            if parent in seen:
                raise VocabularyError(f"{kind}: cycle through {parent!r}")
            seen.add(parent)
            parent = terms[parent].parent
    return terms


def load_vocabulary(policies_dir: Path) -> Vocabulary:
    path = Path(policies_dir) / "vocabulary.toml"
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    return Vocabulary(
        purposes=_terms(raw.get("purposes", {}), "purposes"),
        data_categories=_terms(raw.get("data_categories", {}), "data_categories"),
    )
