"""The pages' language: English or French, chosen by the switch, else the person's own, else
the browser's.

Page text is written in English in the templates and passed through ``_()``; other
languages' wording is looked up in ``translations/<language>.toml`` (gettext-style, keyed by
the English text, so a missing translation shows the English rather than nothing). Purposes
and data categories are translated in policies/vocabulary.toml instead, where a deployment
can change them.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from flask import g, request, session

from consent_service.web.session import current_user

LANGUAGES = {"en": "English", "fr": "Français"}
DEFAULT = "en"


def language() -> str:
    if "web_lang" not in g:
        chosen = session.get("lang")
        if chosen not in LANGUAGES:
            user = current_user()
            chosen = user.language if user is not None and user.language in LANGUAGES else None
        if chosen not in LANGUAGES:
            chosen = request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT)
        g.web_lang = chosen
    return g.web_lang  # type: ignore[no-any-return]


def translate(text: str, **values: Any) -> str:
    lang = language()
    if lang != DEFAULT:
        text = _catalog(lang).get(text, text)
    return text.format(**values) if values else text


TRANSLATIONS = Path(__file__).resolve().parent / "translations"


@cache
def _catalog(language: str) -> dict[str, str]:
    path = TRANSLATIONS / f"{language}.toml"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        return tomllib.load(fh)
