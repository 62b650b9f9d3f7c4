"""The pages' language: English or French, chosen by the switch, else the person's own, else
the browser's.

Page text is written in English in the templates and the code and passed through ``_()`` (the
templates) or :func:`translate` (the code); other languages' wording is in the gettext catalogs
under ``consent_service/translations/`` (``make translations`` extracts the texts with pybabel,
updates the catalogs and compiles them), looked up through Flask-Babel with the language chosen
here, so a missing translation shows the English rather than nothing. Texts name their values
as ``{name}`` (``str.format``), filled in after the lookup. Purposes and data categories are
translated in policies/vocabulary.toml instead, where a deployment can change them.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request, session
from flask_babel import Babel, gettext

from consent_service.web.session import current_user
from consent_service.web.words import TRANSLATIONS

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
    return g.web_lang


def register(app: Flask) -> None:
    """Flask-Babel over the service's catalogs, in the language :func:`language` chooses."""
    Babel(
        app,
        locale_selector=language,
        default_locale=DEFAULT,
        default_translation_directories=str(TRANSLATIONS),
    )


def translate(text: str, **values: Any) -> str:
    """``text`` in the page's language, with its ``{name}`` values filled in."""
    text = gettext(text)
    return text.format(**values) if values else text
