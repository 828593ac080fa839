"""Prompt templates that turn a noun into sentences for the text encoder."""

from __future__ import annotations

from collections.abc import Sequence

# TAC's seven-template ensemble (the "SIMPLE_IMAGENET_TEMPLATES" of CLIP), kept verbatim,
# grammar included ("a origami"), so embeddings match the paper's.
TAC_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

SINGLE_TEMPLATE: tuple[str, ...] = ("a photo of a {}.",)

NAMED_TEMPLATES: dict[str, tuple[str, ...]] = {"tac": TAC_TEMPLATES, "single": SINGLE_TEMPLATE}


def get_templates(name_or_list: str | Sequence[str]) -> tuple[str, ...]:
    """Templates by name ("tac", "single") or as given: a non-empty list of strings with ``{}``."""
    if isinstance(name_or_list, str):
        key = name_or_list.strip().lower()
        if key not in NAMED_TEMPLATES:
            raise ValueError(
                f"unknown template set {name_or_list!r}; choose one of {sorted(NAMED_TEMPLATES)} or pass a list"
            )
        return NAMED_TEMPLATES[key]
    templates = tuple(name_or_list)
    if not templates:
        raise ValueError("template list must not be empty")
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"every template must be a string containing '{{}}', got {template!r}")
        try:
            template.format("noun")
        except (IndexError, KeyError, ValueError) as error:
            # Other braces ("{0}", "{x}", a lone "{") would break str.format at embedding time.
            raise ValueError(f"template {template!r} cannot be filled with str.format: {error}") from error
    return templates
