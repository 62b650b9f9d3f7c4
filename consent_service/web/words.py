"""Plain-language wording of rules, approvals and codes, in English and French.

Labels come from policies/vocabulary.toml (``label_fr`` etc.), so a deployment that adds
codes or languages changes the pages without touching Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consent_service.core.vocabulary import Vocabulary

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
STATUSES = {
    "active": ("in force", "en vigueur"),
    "revoked": ("withdrawn", "retiré"),
    "expired": ("expired", "expiré"),
}
METHODS = {
    "verbal": ("Spoken", "À l'oral"),
    "written": ("Written and signed", "Par écrit et signé"),
    "electronic": ("Electronically", "Par voie électronique"),
}
EVENTS = {
    "recorded": ("you gave this consent", "vous avez donné ce consentement"),
    "amended": ("the consent was changed", "le consentement a été modifié"),
    "revoked": ("you withdrew this consent", "vous avez retiré ce consentement"),
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


class UnknownTimeZone(ValueError):
    """``TIMEZONE`` names no IANA time zone: the service does not start rather than show UTC."""


@cache
def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``America/Toronto``), or :class:`UnknownTimeZone` naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(
            f"TIMEZONE (CONSENT_TIMEZONE) = {name!r} is not a time zone; give an IANA name "
            "such as America/Toronto"
        ) from exc


class Words:
    """Wording for one language, with the vocabulary and the names of organizations and communities.

    Times are shown in ``zone`` (the deployment's ``TIMEZONE``), each with the zone's abbreviation.
    """

    def __init__(
        self,
        *,
        language: str,
        vocabulary: Vocabulary,
        organizations: Mapping[str, str],
        communities: Mapping[str, str],
        zone: tzinfo = UTC,
    ) -> None:
        self.language = language
        self.vocabulary = vocabulary
        self.organizations = organizations
        self.communities = communities
        self.zone = zone

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

    def status(self, status: str) -> str:
        """A consent's status: in force, withdrawn, expired."""
        return self._pick(*STATUSES[status]) if status in STATUSES else status

    def method(self, method: str) -> str:
        """How the person agreed: spoken, written and signed, electronically."""
        return self._pick(*METHODS[method]) if method in METHODS else method

    def event(self, kind: str) -> str:
        """What happened to a consent, told to the person: you gave it, it was changed, you withdrew it."""
        return self._pick(*EVENTS[kind]) if kind in EVENTS else kind

    def is_sensitive(self, code: str) -> bool:
        term = self.vocabulary.data_categories.get(code)
        return term is not None and term.sensitive

    def sensitive(self, codes: Iterable[str]) -> list[tuple[str, str, bool]]:
        """Every sensitive category of the vocabulary, each on its own: (code, name, named in ``codes``)."""
        named = set(codes)
        return [
            (code, self.category(code), code in named)
            for code in self.vocabulary.data_categories
            if self.is_sensitive(code)
        ]

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

    @property
    def zone_name(self) -> str:
        """The zone as its IANA name (America/Toronto), which says where its times are."""
        return str(getattr(self.zone, "key", None) or self.zone)

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.zone)

    def day(self, value: datetime | date | None) -> str:
        """The date as people read it, the day it is in the deployment's zone for a moment."""
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = self.local(value).date()
        if self.language == "fr":
            return f"{value.day} {MONTHS_FR[value.month - 1]} {value.year}"
        return f"{value.day} {value:%B %Y}"

    def when(self, value: datetime | None) -> str:
        """31 January 2027, 09:05 EST: the deployment's local time, with its zone."""
        if value is None:
            return ""
        value = self.local(value)
        return f"{self.day(value)}, {value:%H:%M} {value:%Z}"

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

    # -- reasons -------------------------------------------------------------------------------

    def reason(
        self,
        reason: Mapping[str, Any],
        decision: Mapping[str, Any],
        *,
        consent_number: int | None = None,
        to_the_person: bool = False,
    ) -> str:
        """A decision's reason as a sentence with names, never ids: "No consent lets Regional
        Planning Authority use Nationality and immigration status for Service planning."

        ``to_the_person``: worded for the person the decision is about (their access report),
        whose consents are numbered as the report numbers them (``consent_number``); otherwise
        for a community's stewards, to whom the person is one of their members.
        """
        fr = self.language == "fr"
        org = self.org(decision["requester"])
        data = self.join([self.category(c) for c in decision["data_categories"]])
        purpose = self.purpose(decision["purpose"])
        use = f"d'utiliser {data} pour {purpose}" if fr else f"use {data} for {purpose}"
        code = reason.get("code")
        community_id = reason.get("community")
        community = self.community(community_id) if community_id else None
        words = _rule_words(reason)
        quoted = f" : « {words} »" if fr and words else f": “{words}”" if words else ""
        if code == "no_consent":
            return f"Aucun consentement ne permet à {org} {use}." if fr else f"No consent lets {org} {use}."
        if code == "consent":
            if to_the_person and consent_number is not None:
                who = self._pick(f"Your consent {consent_number}", f"Votre consentement {consent_number}")
            elif to_the_person:
                who = self._pick(
                    "A consent you gave to another organization",
                    "Un consentement donné à une autre organisation",
                )
            else:
                who = self._pick("The member's consent", "Le consentement du membre")
            return f"{who} permet à {org} {use}." if fr else f"{who} lets {org} {use}."
        if code == "community_rule":
            if fr:
                rule = f"Une règle de {community}" if community else "Une règle d'une autre communauté"
                return f"{rule} ne permet pas à {org} {use}{quoted}."
            rule = f"A rule of {community}" if community else "A rule of another community"
            return f"{rule} does not let {org} {use}{quoted}."
        if code == "approval_required":
            whose = community or self._pick("Another community", "Une autre communauté")
            if fr:
                return f"{whose} n'a pas approuvé l'utilisation de {data} par {org} pour {purpose}{quoted}."
            return f"{whose} has not approved {org}'s use of {data} for {purpose}{quoted}."
        if code == "below_min_cell_size":
            message = str(reason.get("message", ""))
            size = re.search(r"at least (\d+)", message)
            n = size.group(1) if size else "?"
            released = re.search(r"this deployment releases (\S+) data", message)
            if community is None and released:  # the deployment's own rule for a sensitive category
                name = self.category(released.group(1))
                if fr:
                    return (
                        f"Ce service ne communique les renseignements « {name} » pour cet usage que par "
                        f"groupes d'au moins {n} personnes ; cette demande en comptait moins."
                    )
                return (
                    f"This service releases {name} for this use only in groups of at least {n} people; "
                    "this request had fewer."
                )
            whose = community or self._pick("A community", "Une communauté")
            if fr:
                return (
                    f"{whose} ne communique les données de ses membres que par groupes d'au moins {n} "
                    "personnes ; cette demande en comptait moins."
                )
            return (
                f"{whose} releases its members' data only in groups of at least {n} people; "
                "this request had fewer."
            )
        return str(reason.get("message", code))


# What the engine says when a rule gave no words of its own (these name the community by id).
_GENERIC_RULE_WORDS = (
    re.compile(r"^Community \S+ does not allow this use of its members' data\.$"),
    re.compile(r"^Community \S+ must approve this use first\.$"),
    re.compile(r"^A rule of another community applies\.$"),
)
_APPROVAL_PREFIX = re.compile(r"^Community \S+ must approve this use first: ")


def _rule_words(reason: Mapping[str, Any]) -> str:
    """The community's own words for its rule, if the reason carries them (never an id)."""
    if reason.get("code") not in ("community_rule", "approval_required"):
        return ""
    message = str(reason.get("message") or "").strip()
    if any(pattern.match(message) for pattern in _GENERIC_RULE_WORDS):
        return ""
    return _APPROVAL_PREFIX.sub("", message)
