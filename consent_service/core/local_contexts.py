"""Local Contexts Traditional Knowledge (TK) and Biocultural (BC) Labels and Notices.

A community rule may carry these codes so the community's protocols travel with the data:
they are returned with the rule and, for a permit, in its obligations (``local_contexts``).
The names are Local Contexts' own (https://localcontexts.org/labels/); the short form in
parentheses is accepted too and stored as the full name, so every reader sees one spelling.
A community's customised label text lives in the Local Contexts Hub, not here.
"""

from __future__ import annotations

from collections.abc import Iterable

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
