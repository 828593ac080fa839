from __future__ import annotations

import pytest

from semclust.vocab.templates import SINGLE_TEMPLATE, TAC_TEMPLATES, get_templates


def test_tac_templates_are_the_papers_seven() -> None:
    assert TAC_TEMPLATES == (
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    )
    assert get_templates("tac") == TAC_TEMPLATES
    assert get_templates("single") == SINGLE_TEMPLATE == ("a photo of a {}.",)


def test_custom_templates() -> None:
    assert get_templates(["{}", "a sketch of a {}."]) == ("{}", "a sketch of a {}.")


@pytest.mark.parametrize("bad", ["clip", [], ["no slot"], ["a {0} and {}"], ["a {} {"], [3]])
def test_bad_templates_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        get_templates(bad)  # type: ignore[arg-type]
