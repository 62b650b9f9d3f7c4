"""Plain-language wording of rules, approvals and codes, in English and French.

Sentences are written in English and translated through the gettext catalogs under
``consent_service/translations/`` (the same ones the pages' templates use, read here without
Flask so the wording works outside a request); dates are formatted by Babel in the language.
Labels come from policies/vocabulary.toml (``label_fr`` etc.), so a deployment that adds
codes or languages changes the pages without touching Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import dates, support

from consent_service.core import local_contexts
from consent_service.core.vocabulary import Vocabulary
from consent_service.services.organizations import ADMIN_ORGANIZATION


def N_(text: str) -> str:
    """Marks ``text`` for extraction into the catalogs; it is translated where it is shown."""
    return text


# The wording of codes, in English: the catalogs under consent_service/translations/ hold the
# other languages' (``N_`` marks a text for extraction; it is translated where it is shown).
OBLIGATIONS = {
    "aggregate_only": N_("only as counts or totals"),
    "no_onward_disclosure": N_("not passed on to anyone else"),
    "no_linkage": N_("not linked with other data"),
    "return_results_to_community": N_("results are returned to the community"),
    "community_review_before_publication": N_("the community reviews results before publication"),
    "attribution_required": N_("the community is credited"),
}
STATUSES = {"active": N_("in force"), "revoked": N_("withdrawn"), "expired": N_("expired")}
METHODS = {"verbal": N_("Spoken"), "written": N_("Written and signed"), "electronic": N_("Electronically")}
EVENTS = {
    "recorded": N_("you gave this consent"),
    "amended": N_("the consent was changed"),
    "revoked": N_("you withdrew this consent"),
}
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


@cache
def catalog(language: str) -> support.NullTranslations:
    """The compiled gettext catalog of ``language`` (English, the source language, has none)."""
    return support.Translations.load(str(TRANSLATIONS), [language])


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


@dataclass(frozen=True)
class ShownLabel:
    """A Local Contexts label as a page shows it: its stored code, its name and what it asks in
    the page's language, and its icon's file under ``static/labels/`` (None if not known)."""

    code: str
    name: str
    text: str
    icon: str | None
    family: str


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

    @property
    def recipient_choices(self) -> dict[str, str]:
        """The organizations a person may be asked to share with: every one but the operator's
        own (``admin``), which runs the service and is never a recipient of anyone's data."""
        return {org_id: name for org_id, name in self.organizations.items() if org_id != ADMIN_ORGANIZATION}

    def _(self, text: str, **values: Any) -> str:
        """``text`` in this language, with its ``{name}`` values filled in."""
        text = catalog(self.language).gettext(text)
        return text.format(**values) if values else text

    # -- codes -------------------------------------------------------------------------------

    def purpose(self, code: str) -> str:
        term = self.vocabulary.purposes.get(code)
        return term.label_in(self.language) if term else code

    def category(self, code: str) -> str:
        if code == "*":
            return self._("all data")
        term = self.vocabulary.data_categories.get(code)
        return term.label_in(self.language) if term else code

    def status(self, status: str) -> str:
        """A consent's status: in force, withdrawn, expired."""
        return self._(STATUSES[status]) if status in STATUSES else status

    def method(self, method: str) -> str:
        """How the person agreed: spoken, written and signed, electronically."""
        return self._(METHODS[method]) if method in METHODS else method

    def event(self, kind: str) -> str:
        """What happened to a consent, told to the person: you gave it, it was changed, you withdrew it."""
        return self._(EVENTS[kind]) if kind in EVENTS else kind

    # -- Local Contexts labels ------------------------------------------------------------------

    def label(self, code: str) -> ShownLabel:
        known = local_contexts.label(code)
        if known is None:  # stored before the service knew it: its name alone
            return ShownLabel(code=code, name=code, text="", icon=None, family="")
        return ShownLabel(
            code=code,
            name=self._(known.name),
            text=self._(known.text),
            icon=known.icon,
            family=known.family,
        )

    def labels(self, codes: Iterable[str]) -> list[ShownLabel]:
        return [self.label(code) for code in codes]

    def label_families(self) -> list[tuple[str, list[ShownLabel]]]:
        """Every label the service knows, by family (TK, BC, notices), in Local Contexts' order."""
        return [
            (
                self._(name),
                [self.label(lb.code) for lb in local_contexts.CATALOGUE.values() if lb.family == family],
            )
            for family, name in local_contexts.FAMILIES.items()
        ]

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
            return self._("any organization")
        return self.organizations.get(org_id, org_id)

    def community(self, community_id: str) -> str:
        return self.communities.get(community_id, community_id)

    def join(self, items: Iterable[str], *, last: str | None = None) -> str:
        items = list(items)
        last = last or self._("and")
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
        return dates.format_date(value, "d MMMM y", locale=self.language)

    def when(self, value: datetime | None) -> str:
        """31 January 2027, 09:05 EST: the deployment's local time, with its zone."""
        if value is None:
            return ""
        value = self.local(value)
        return f"{self.day(value)}, {value:%H:%M} {value:%Z}"

    # -- rules -------------------------------------------------------------------------------

    def _data(self, categories: list[str]) -> str:
        if "*" in categories:
            return self._("any of members' data")
        names = [self.category(c) for c in categories]
        # English lowercases the names inside the sentence, French keeps them as labelled.
        return self._(
            "members' {categories_lower} data",
            categories=self.join(names, last=self._("or")),
            categories_lower=self.join([n.lower() for n in names], last=self._("or")),
        )

    def _purposes(self, purposes: list[str]) -> str:
        names = [self.purpose(p).lower() for p in purposes]
        return self._("for {purposes}", purposes=self.join(names, last=self._("or")))

    def rule(self, rule: Mapping[str, Any]) -> str:
        """ "No one may use members' health data for research." and the like."""
        everyone = "*" in rule["requesters"]
        who = self.join([self.org(r) for r in rule["requesters"]], last=self._("or"))
        data, purposes = self._data(rule["data_categories"]), self._purposes(rule["purposes"])
        if rule["effect"] == "deny":
            if everyone:
                return self._("No one may use {data} {purposes}.", data=data, purposes=purposes)
            return self._("{who} may not use {data} {purposes}.", who=who, data=data, purposes=purposes)
        if everyone:
            return self._(
                "Anyone must have the community's approval before using {data} {purposes}.",
                data=data,
                purposes=purposes,
            )
        return self._(
            "{who} must have the community's approval before using {data} {purposes}.",
            who=who,
            data=data,
            purposes=purposes,
        )

    def obligations(self, obligations: Mapping[str, Any]) -> list[str]:
        out = []
        for name, value in obligations.items():
            if name == "retention_days":
                out.append(self._("kept for at most {days} days", days=value))
            elif name in OBLIGATIONS and value is True:
                wording = self._(OBLIGATIONS[name])
                if name == "aggregate_only" and obligations.get("min_cell_size"):
                    wording = self._(
                        "{obligation}, each of at least {n} people",
                        obligation=wording,
                        n=obligations["min_cell_size"],
                    )
                out.append(wording)
        return out

    def approval(self, approval: Mapping[str, Any]) -> str:
        return self._(
            "{who} may use members' {data} data for {purposes}.",
            who=self.org(approval["requester"]),
            data=self.join([self.category(c).lower() for c in approval["data_categories"]]),
            purposes=self.join([self.purpose(p).lower() for p in approval["purposes"]]),
        )

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
        org = self.org(decision["requester"])
        data = self.join([self.category(c) for c in decision["data_categories"]])
        purpose = self.purpose(decision["purpose"])
        use = self._("use {data} for {purpose}", data=data, purpose=purpose)
        code = reason.get("code")
        community_id = reason.get("community")
        community = self.community(community_id) if community_id else None
        words = _rule_words(reason)
        quoted = self._(": “{words}”", words=words) if words else ""
        if code == "no_consent":
            return self._("No consent lets {org} {use}.", org=org, use=use)
        if code == "consent":
            if to_the_person and consent_number is not None:
                who = self._("Your consent {n}", n=consent_number)
            elif to_the_person:
                who = self._("A consent you gave to another organization")
            else:
                who = self._("The member's consent")
            return self._("{who} lets {org} {use}.", who=who, org=org, use=use)
        if code == "community_rule":
            if community:
                rule = self._("A rule of {community}", community=community)
            else:
                rule = self._("A rule of another community")
            return self._(
                "{rule} does not let {org} {use}{quoted}.", rule=rule, org=org, use=use, quoted=quoted
            )
        if code == "approval_required":
            return self._(
                "{whose} has not approved {org}'s use of {data} for {purpose}{quoted}.",
                whose=community or self._("Another community"),
                org=org,
                data=data,
                purpose=purpose,
                quoted=quoted,
            )
        if code == "below_min_cell_size":
            message = str(reason.get("message", ""))
            size = re.search(r"at least (\d+)", message)
            n = size.group(1) if size else "?"
            released = re.search(r"this deployment releases (\S+) data", message)
            if community is None and released:  # the deployment's own rule for a sensitive category
                return self._(
                    "This service releases {name} for this use only in groups of at least {n} people; "
                    "this request had fewer.",
                    name=self.category(released.group(1)),
                    n=n,
                )
            return self._(
                "{whose} releases its members' data only in groups of at least {n} people; "
                "this request had fewer.",
                whose=community or self._("A community"),
                n=n,
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
