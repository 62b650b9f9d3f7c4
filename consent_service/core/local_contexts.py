"""Local Contexts Traditional Knowledge (TK) and Biocultural (BC) Labels and Notices.

A community rule may carry these codes so the community's protocols travel with the data:
they are returned with the rule and, for a permit, in its obligations (``local_contexts``).
The names are Local Contexts' own (https://localcontexts.org/labels/); the short form in
parentheses is accepted too and stored as the full name, so every reader sees one spelling.
A community's customised label text lives in the Local Contexts Hub, not here.

For the pages, each label has a :class:`Label`: its family, a short text saying in this
project's own plain words what the label asks of whoever uses the data (not Local Contexts'
wording; the set of labels is theirs: :data:`SOURCE`), and the file name of its icon, drawn
for this project, under ``consent_service/static/labels/``. The texts are English here and
translated by the pages' gettext catalogs (``N_`` marks them for extraction).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SOURCE = "https://localcontexts.org/labels/traditional-knowledge-labels/"


def N_(text: str) -> str:
    """Marks ``text`` for the gettext catalogs; the pages translate it where they show it."""
    return text


# full name -> Local Contexts' short form (None for notices, which have none)
LABELS: dict[str, str | None] = {
    # Traditional Knowledge Labels
    "TK Family": "TK F",
    "TK Clan": "TK CL",
    "TK Multiple Communities": "TK MC",
    "TK Attribution": "TK A",
    "TK Community Voice": "TK CV",
    "TK Creative": "TK CR",
    "TK Verified": "TK V",
    "TK Non-Verified": "TK NV",
    "TK Seasonal": "TK S",
    "TK Women General": "TK WG",
    "TK Men General": "TK MG",
    "TK Men Restricted": "TK MR",
    "TK Women Restricted": "TK WR",
    "TK Culturally Sensitive": "TK CS",
    "TK Secret / Sacred": "TK SS",
    "TK Open to Commercialization": "TK OC",
    "TK Non-Commercial": "TK NC",
    "TK Community Use Only": "TK CO",
    "TK Outreach": "TK O",
    "TK Open to Collaboration": "TK CB",
    # Biocultural Labels
    "BC Provenance": "BC P",
    "BC Multiple Communities": "BC MC",
    "BC Clan": "BC CL",
    "BC Consent Verified": "BC CV",
    "BC Consent Non-Verified": "BC CNV",
    "BC Research Use": "BC R",
    "BC Open to Collaboration": "BC CB",
    "BC Open to Commercialization": "BC OC",
    "BC Outreach": "BC O",
    "BC Non-Commercial": "BC NC",
    # Notices (used before a community has applied its own Labels)
    "TK Notice": None,
    "BC Notice": None,
    "Attribution Incomplete Notice": None,
    "Open to Collaboration Notice": None,
}

TK, BC, NOTICE = "tk", "bc", "notice"
FAMILIES = {
    TK: N_("Traditional Knowledge (TK) Labels"),
    BC: N_("Biocultural (BC) Labels"),
    NOTICE: N_("Notices"),
}

# What each label asks, in this project's words (English; the catalogs hold the French).
TEXTS: dict[str, tuple[str, str]] = {  # full name -> (name as the pages show it, what it asks)
    "TK Family": (N_("TK Family"), N_("Shared within a family: ask that family before any other use.")),
    "TK Clan": (N_("TK Clan"), N_("Held by a clan: the clan's own rules say who may use it and how.")),
    "TK Multiple Communities": (
        N_("TK Multiple Communities"),
        N_("Several communities hold this knowledge together, and each has a say in how it is used."),
    ),
    "TK Attribution": (
        N_("TK Attribution"),
        N_("Name the community as its source whenever it is used or shared."),
    ),
    "TK Community Voice": (
        N_("TK Community Voice"),
        N_("The community wants its own words heard in how this is described and used."),
    ),
    "TK Creative": (
        N_("TK Creative"),
        N_("The community's creativity is part of this material; recognise it, whoever holds the rights."),
    ),
    "TK Verified": (
        N_("TK Verified"),
        N_("The community has confirmed that the way this is kept and shared respects its protocols."),
    ),
    "TK Non-Verified": (
        N_("TK Non-Verified"),
        N_("The community has concerns about how this is kept or shared: talk with it before using it."),
    ),
    "TK Seasonal": (
        N_("TK Seasonal"),
        N_("Some uses belong to certain seasons or times of year: respect when it may be used."),
    ),
    "TK Women General": (
        N_("TK Women General"),
        N_("Meant for women of the community to see and use."),
    ),
    "TK Men General": (N_("TK Men General"), N_("Meant for men of the community to see and use.")),
    "TK Men Restricted": (
        N_("TK Men Restricted"),
        N_("Only some men of the community may see or use this: ask first."),
    ),
    "TK Women Restricted": (
        N_("TK Women Restricted"),
        N_("Only some women of the community may see or use this: ask first."),
    ),
    "TK Culturally Sensitive": (
        N_("TK Culturally Sensitive"),
        N_("Culturally sensitive: treat it with respect and ask the community before sharing it further."),
    ),
    "TK Secret / Sacred": (
        N_("TK Secret / Sacred"),
        N_("Secret or sacred: not for general view; only those the community allows may see it."),
    ),
    "TK Open to Commercialization": (
        N_("TK Open to Commercialization"),
        N_("The community is open to commercial use, on terms agreed with it."),
    ),
    "TK Non-Commercial": (
        N_("TK Non-Commercial"),
        N_("Not for commercial use: no selling it and no profit from it."),
    ),
    "TK Community Use Only": (
        N_("TK Community Use Only"),
        N_("For the community's own use only, not for outsiders."),
    ),
    "TK Outreach": (
        N_("TK Outreach"),
        N_("May be used for teaching and public education, as the community agrees."),
    ),
    "TK Open to Collaboration": (
        N_("TK Open to Collaboration"),
        N_("The community welcomes working together on research or projects about this."),
    ),
    "BC Provenance": (
        N_("BC Provenance"),
        N_("Says where this comes from: the community is its source and keeps rights in it."),
    ),
    "BC Multiple Communities": (
        N_("BC Multiple Communities"),
        N_("Several communities are its source and share the rights and duties that come with it."),
    ),
    "BC Clan": (N_("BC Clan"), N_("A clan is its source, and the clan's rules apply to its use.")),
    "BC Consent Verified": (
        N_("BC Consent Verified"),
        N_("The community's free, prior and informed consent to this use was given and confirmed."),
    ),
    "BC Consent Non-Verified": (
        N_("BC Consent Non-Verified"),
        N_("The community's consent to this use has not been confirmed: do not assume it."),
    ),
    "BC Research Use": (
        N_("BC Research Use"),
        N_("The community allows research use, as agreed with it."),
    ),
    "BC Open to Collaboration": (
        N_("BC Open to Collaboration"),
        N_("The community welcomes research partnerships that involve it."),
    ),
    "BC Open to Commercialization": (
        N_("BC Open to Commercialization"),
        N_("Commercial use is possible under an agreement with the community that shares the benefits."),
    ),
    "BC Outreach": (
        N_("BC Outreach"),
        N_("May be used in education and outreach, crediting the community."),
    ),
    "BC Non-Commercial": (N_("BC Non-Commercial"), N_("Not for commercial products or profit.")),
    "TK Notice": (
        N_("TK Notice"),
        N_("Traditional knowledge is here, and its community may add its own labels: ask before using it."),
    ),
    "BC Notice": (
        N_("BC Notice"),
        N_("Material from a community (such as genetic resources) is here, and its rights stay with it."),
    ),
    "Attribution Incomplete Notice": (
        N_("Attribution Incomplete Notice"),
        N_("The record does not yet say rightly who this comes from; that is being put right with them."),
    ),
    "Open to Collaboration Notice": (
        N_("Open to Collaboration Notice"),
        N_("Those who hold this are ready to work with communities on it and on how it is described."),
    ),
}


@dataclass(frozen=True)
class Label:
    """One label or notice as the pages show it (English; translated where it is shown)."""

    code: str  # the full name, as rules store it
    short: str | None
    family: str  # TK, BC or NOTICE
    name: str
    text: str
    icon: str  # file name under consent_service/static/labels/

    @property
    def family_name(self) -> str:
        return FAMILIES[self.family]


def _icon(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-") + ".svg"


def _family(name: str, short: str | None) -> str:
    if short is None:
        return NOTICE
    return TK if name.startswith("TK ") else BC


CATALOGUE: dict[str, Label] = {
    name: Label(
        code=name,
        short=short,
        family=_family(name, short),
        name=TEXTS[name][0],
        text=TEXTS[name][1],
        icon=_icon(name),
    )
    for name, short in LABELS.items()
}


def label(name: str) -> Label | None:
    """The label stored as ``name`` (its full name), or None for one this service does not know."""
    return CATALOGUE.get(name)


_BY_SPELLING: dict[str, str] = {
    spelling.casefold(): name
    for name, short in LABELS.items()
    for spelling in (name, short)
    if spelling is not None
}


def canonical(labels: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the known labels under their full names, deduplicated; the spellings not recognised)."""
    known: dict[str, None] = {}
    unknown: list[str] = []
    for label in labels:
        name = _BY_SPELLING.get(" ".join(label.split()).casefold())
        if name is None:
            unknown.append(label)
        else:
            known[name] = None
    return list(known), unknown
