"""The gettext catalogs under consent_service/translations/ are complete and compiled.

``make translations`` extracts the texts of the code and templates (babel.cfg), merges them into
each language's .po and compiles the .mo; all three are committed. These tests fail when a page
text was added without its French, or a .po was edited without compiling its .mo.
"""

from __future__ import annotations

import gettext
from datetime import date
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from consent_service.config import DEFAULT_POLICIES_DIR
from consent_service.core.vocabulary import load_vocabulary
from consent_service.web.words import TRANSLATIONS, Words

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("fr",)


def _po(language: str) -> Catalog:
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=language)


def _mo_catalog(path: Path) -> dict[object, str]:
    with path.open("rb") as fh:
        return dict(gettext.GNUTranslations(fh)._catalog)  # type: ignore[attr-defined]


def _extracted() -> set[str]:
    """Every text the code and the templates hand to gettext, as ``make translations`` finds them."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {**DEFAULT_KEYWORDS, "translate": None}
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map, keywords=keywords):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_the_compiled_po(language: str, tmp_path: Path) -> None:
    compiled = tmp_path / "messages.mo"
    with compiled.open("wb") as fh:
        write_mo(fh, _po(language))
    committed = TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo"
    assert _mo_catalog(committed) == _mo_catalog(compiled)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_extracted_text_has_its_translation(language: str) -> None:
    texts = _extracted()
    assert len(texts) > 300  # the extraction found the code's and the templates' texts
    catalog = _po(language)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    assert sorted(texts - translated) == []


def test_the_template_lists_what_is_extracted() -> None:
    with (TRANSLATIONS / "messages.pot").open("rb") as fh:
        template = {m.id for m in read_po(fh) if m.id}
    assert template == _extracted()


def test_words_speak_the_catalogs_language() -> None:
    """Words, outside any request, reads the same compiled catalog the pages do."""

    def words(language: str) -> Words:
        vocabulary = load_vocabulary(DEFAULT_POLICIES_DIR)
        return Words(language=language, vocabulary=vocabulary, organizations={}, communities={})

    assert words("fr").day(date(2027, 8, 1)) == "1 août 2027"
    assert words("en").day(date(2027, 8, 1)) == "1 August 2027"
    assert words("fr").join(["a", "b", "c"]) == "a, b et c"
    assert words("en").status("revoked") == "withdrawn" and words("fr").status("revoked") == "retiré"
