"""The obligations vocabulary is data (policies/obligations.toml), read by core/obligations.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent_service.core import obligations


def test_the_file_holds_the_codes_the_service_implements() -> None:
    known = {
        "aggregate_only": {"min_cell_size": int},
        "no_onward_disclosure": {},
        "purpose_limited": {},
        "no_linkage": {},
        "return_results_to_community": {},
        "community_review_before_publication": {},
        "attribution_required": {},
        "retention_days": {},
    }
    assert known == obligations.KNOWN
    assert obligations.VOCABULARY["retention_days"].returned_as == "days"
    assert obligations.plain_flags() == sorted(set(obligations.KNOWN) - {"aggregate_only", "retention_days"})


def test_every_code_and_parameter_has_wording_in_both_languages() -> None:
    for obligation in obligations.VOCABULARY.values():
        assert obligation.label.pick("en") and obligation.label.pick("fr") != obligation.label.pick("en")
        for parameter in obligation.parameters.values():
            placeholder = f"{{{parameter.name}}}"
            assert placeholder in parameter.label.en and placeholder in parameter.label.fr


def test_a_number_valued_obligation_is_judged_and_returned_by_the_file() -> None:
    assert obligations.problems({"retention_days": 0}) == [
        "retention_days must be a whole number of days, at least 1"
    ]
    assert obligations.as_list({"retention_days": 30}, rule_id="r", community="c") == [
        {"code": "retention_days", "days": 30, "rule_id": "r", "community": "c"}
    ]


WORDS = 'label = "a"\nlabel_fr = "b"\ndescription = "c"\ndescription_fr = "d"\n'


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[x]\n" + WORDS, 'value must be "flag" or "int"'),
        ('[x]\nvalue = "int"\n' + WORDS, "needs returned_as"),
        ('[x]\nvalue = "flag"\n' + WORDS.replace('label_fr = "b"\n', ""), "needs label and label_fr"),
        ('[x]\nvalue = "flag"\n' + WORDS + '[x.parameters.n]\ntype = "float"\n', "type must be one of"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_entry(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "obligations.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(obligations.ObligationsFileError, match=r"obligations\.toml \[x\]") as caught:
        obligations.load(path)
    assert problem in str(caught.value)
