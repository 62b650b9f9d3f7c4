"""Plain-language wording of rules, approvals and codes, in English and French.

Labels come from policies/vocabulary.toml (``label_fr`` etc.), so a deployment that adds
codes or languages changes the pages without touching Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from ..domain.vocabulary import Vocabulary

OBLIGATIONS = {
    "aggregate_only": ("only as counts or totals", "uniquement sous forme de totaux"),
    "no_onward_disclosure": ("not passed on to anyone else", "sans transmission à quiconque"),
    "no_linkage": ("not linked with other data", "sans croisement avec d'autres données"),
    "return_results_to_community": (
        "results are returned to the community",
        "les résultats sont remis à la communauté",
    ),
    "community_review_before_publication": (
        "the community reviews results before publication",
        "la communauté relit les résultats avant publication",
    ),
    "attribution_required": ("the community is credited", "la communauté est citée"),
}
MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


class Words:
    """Wording for one language, with the vocabulary and the names of organizations and communities."""

    def __init__(
        self,
        *,
        language: str,
        vocabulary: Vocabulary,
        organizations: Mapping[str, str],
        communities: Mapping[str, str],
    ) -> None:
        self.language = language
        self.vocabulary = vocabulary
        self.organizations = organizations
        self.communities = communities

    def _pick(self, english: str, french: str) -> str:
        return french if self.language == "fr" else english

    # -- codes -------------------------------------------------------------------------------

    def purpose(self, code: str) -> str:
        term = self.vocabulary.purposes.get(code)
        return term.label_in(self.language) if term else code

    def category(self, code: str) -> str:
        if code == "*":
            return self._pick("all data", "toutes les données")
        term = self.vocabulary.data_categories.get(code)
        return term.label_in(self.language) if term else code

    def org(self, org_id: str) -> str:
        if org_id == "*":
            return self._pick("any organization", "toute organisation")
        return self.organizations.get(org_id, org_id)

    def community(self, community_id: str) -> str:
        return self.communities.get(community_id, community_id)

    def join(self, items: Iterable[str], *, last: str | None = None) -> str:
        items = list(items)
        last = last or self._pick("and", "et")
        if len(items) <= 1:
            return "".join(items)
        return f"{', '.join(items[:-1])} {last} {items[-1]}"

    def orgs(self, ids: Iterable[str]) -> str:
        return self.join([self.org(i) for i in ids])

    def purposes(self, codes: Iterable[str], *, lower: bool = False) -> str:
        names = [self.purpose(c) for c in codes]
        return self.join([n.lower() for n in names] if lower else names)

    def categories(self, codes: Iterable[str], *, lower: bool = False) -> str:
        names = [self.category(c) for c in codes]
        return self.join([n.lower() for n in names] if lower else names)

    def community_list(self, ids: Iterable[str]) -> str:
        return self.join([self.community(i) for i in ids])

    # -- times -------------------------------------------------------------------------------

    def day(self, value: datetime | date | None) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = value.astimezone(UTC).date()
        if self.language == "fr":
            return f"{value.day} {MONTHS_FR[value.month - 1]} {value.year}"
        return f"{value.day} {value:%B %Y}"

    def when(self, value: datetime | None) -> str:
        if value is None:
            return ""
        value = value.astimezone(UTC)
        return f"{self.day(value)}, {value:%H:%M} UTC"

    # -- rules -------------------------------------------------------------------------------

    def _data(self, categories: list[str]) -> str:
        if "*" in categories:
            return self._pick("any of members' data", "toutes les données des membres")
        names = [self.category(c) for c in categories]
        if self.language == "fr":
            return f"les données des membres sur : {self.join(names, last='ou')}"
        return f"members' {self.join([n.lower() for n in names], last='or')} data"

    def _purposes(self, purposes: list[str]) -> str:
        names = [self.purpose(p) for p in purposes]
        if self.language == "fr":
            return f"à des fins de : {self.join([n.lower() for n in names], last='ou')}"
        return f"for {self.join([n.lower() for n in names], last='or')}"

    def rule(self, rule: Mapping[str, Any]) -> str:
        """ "No one may use members' health data for research." and the like."""
        everyone = "*" in rule["requesters"]
        who = self.join([self.org(r) for r in rule["requesters"]], last=self._pick("or", "ou"))
        data, purposes = self._data(rule["data_categories"]), self._purposes(rule["purposes"])
        if rule["effect"] == "deny":
            if self.language == "fr":
                subject = "Aucune organisation ne peut" if everyone else f"{who} ne peut pas"
                return f"{subject} utiliser {data} {purposes}."
            return f"{'No one may' if everyone else who + ' may not'} use {data} {purposes}."
        if self.language == "fr":
            subject = "Toute organisation doit" if everyone else f"{who} doit"
            return f"{subject} obtenir l'approbation de la communauté avant d'utiliser {data} {purposes}."
        subject = "Anyone" if everyone else who
        return f"{subject} must have the community's approval before using {data} {purposes}."

    def obligations(self, obligations: Mapping[str, Any]) -> list[str]:
        out = []
        for name, value in obligations.items():
            if name == "retention_days":
                out.append(self._pick(f"kept for at most {value} days", f"conservées au plus {value} jours"))
            elif name in OBLIGATIONS and value is True:
                english, french = OBLIGATIONS[name]
                if name == "aggregate_only" and obligations.get("min_cell_size"):
                    n = obligations["min_cell_size"]
                    english += f", each of at least {n} people"
                    french += f", chacun d'au moins {n} personnes"
                out.append(self._pick(english, french))
        return out

    def approval(self, approval: Mapping[str, Any]) -> str:
        who = self.org(approval["requester"])
        data = self.join([self.category(c).lower() for c in approval["data_categories"]])
        purposes = self.join([self.purpose(p).lower() for p in approval["purposes"]])
        if self.language == "fr":
            return f"{who} peut utiliser les données des membres sur : {data}, à des fins de : {purposes}."
        return f"{who} may use members' {data} data for {purposes}."
