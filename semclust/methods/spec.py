"""What a clustering method is, declared once next to it: :class:`MethodSpec`.

Every method module ends with its spec(s). The registry (:mod:`semclust.methods.registry`)
collects them; the CLI (``semclust methods``, ``--method``, ``--param``), the workflow (which
views, nouns and images to load, the noun templates, checkpointing), the saved model
(:mod:`semclust.outputs.model`: the estimator class, which view feeds ``predict``) and the
package exports all read the spec, so adding a method is one file, its spec and one test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from semclust.methods.params import Parameter, check_keys, convert, parameters_of

if TYPE_CHECKING:
    from semclust.naming import ClusterNaming

PIXELS = "pixels"  # the predict input of models that classify the images themselves (asd)
VIEWS = ("joint", "visual")


@dataclass
class FeatureSet:
    """Everything a method may read: embeddings per view, and the text tower of their space."""

    joint: np.ndarray
    visual: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: Sequence[str] | None = None
    encode_texts: Callable[[Sequence[str]], np.ndarray] | None = None
    nouns: Callable[[], tuple[list[str], np.ndarray]] | None = None
    encoder: Callable[[], Any] | None = None
    progress: Callable[[str, int], Callable[..., None]] | None = None
    # uint8 images [n,H,W] or [n,H,W,3] aligned with the rows above, and their ids (methods that
    # train on pixels, e.g. asd); None when the source is not at hand (a feature-store directory).
    images: Callable[[], tuple[np.ndarray, list[str]]] | None = None
    # The vocabulary's WordNet synset ids ("" for a user's nouns) and, for an encoder with an
    # ImageNet classifier (offline), its class probabilities per row: what naming reads.
    noun_synset_ids: Callable[[], list[str]] | None = None
    class_probabilities: Callable[[], np.ndarray] | None = None

    def text_tower(self) -> Any:
        """The frozen text model that prompt learning runs through."""
        if self.encoder is None:
            raise ValueError("prompt-learned centers need the encoder's text tower")
        encoder = self.encoder()
        return getattr(encoder, "text_tower", encoder)

    def epoch_callback(self, description: str, epochs: int) -> Callable[[int, float], None] | None:
        if self.progress is None:
            return None
        advance = self.progress(description, epochs)
        return lambda epoch, loss: advance(1, f"loss {loss:.4f}")

    def noun_vocabulary(self) -> tuple[list[str], np.ndarray]:
        """(names, L2-normalised text embeddings in the joint space), loaded on first use."""
        if self.nouns is None:
            raise ValueError("this method needs a noun vocabulary in the encoder's text space")
        return self.nouns()

    def view(self, name: str) -> np.ndarray:
        if name == "joint":
            return self.joint
        if name == "visual":
            if self.visual is None:
                raise ValueError("this encoder has no separate visual view; use --view joint")
            return self.visual
        raise ValueError(f"unknown view {name!r}; expected 'joint' or 'visual'")

    def image_view(self, name: str | None) -> tuple[str, np.ndarray]:
        """``(name, rows)`` of the view image-only steps use: ``name``, or the visual view when
        the encoder has one (it keeps more class information than a bridged joint view)."""
        name = name or ("visual" if self.visual is not None else "joint")
        return name, self.view(name)


@dataclass
class MethodResult:
    estimator: Any
    labels: np.ndarray
    n_clusters: int
    cluster_names: list[list[str]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    naming: ClusterNaming | None = None  # the names' scores, weak flags and (laic) center nouns


def _joint_input(info: Mapping[str, Any]) -> dict[str, str]:
    return {"X": "joint"}


@dataclass(frozen=True)
class MethodSpec:
    """One method: its name, estimator, how it fits from a :class:`FeatureSet`, what it needs.

    ``fit(features, n_clusters, random_state, **params)`` (plus ``checkpoint_dir``/``resume``
    when ``resumable``) returns a :class:`MethodResult`; its keyword parameters and the
    estimator's ``__init__`` parameters are what ``--param`` may set (:meth:`parameters`).
    ``predict_inputs(info)`` maps each argument of the estimator's ``predict`` to the view
    that feeds it (``"joint"``, ``"visual"`` or :data:`PIXELS`), from the result's ``info``;
    ``predict_args`` lists the arguments a saved model may map. ``needs`` names what the fit
    reads beyond the joint view: ``"nouns"``, ``"text"`` (the text tower), ``"images"``
    (pixels), ``"class_names"``. ``names_clusters``: the method names its own clusters (zero-
    shot: the class names), so they are not named by nouns; ``names_from_centers``: its
    text-space ``centers_`` get their nouns too (laic). ``noun_templates``: the prompt
    templates its nouns are embedded with. ``run_summary(info)`` gives the extra lines the CLI
    prints after a run. ``former_estimators``: class names older saved models may carry.
    """

    name: str
    estimator: type[Any]
    fit: Callable[..., MethodResult]
    summary: str
    predict_args: tuple[str, ...] = ("X",)
    predict_inputs: Callable[[Mapping[str, Any]], dict[str, str]] = _joint_input
    needs: frozenset[str] = frozenset()
    needs_k: bool = True
    resumable: bool = False
    names_clusters: bool = False
    names_from_centers: bool = False
    noun_templates: str = "single"
    run_summary: Callable[[Mapping[str, Any]], list[str]] | None = None
    former_estimators: tuple[str, ...] = ()

    def parameters(self) -> dict[str, Parameter]:
        """Every parameter ``--param`` may set: the fit function's, then the estimator's."""
        import inspect

        forwards = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.fit).parameters.values())
        # a fit function that takes **options hands them to the estimator
        init = self.estimator.__init__
        return parameters_of(self.fit, init) if forwards else parameters_of(self.fit)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """ParameterError for a key that is not one of :meth:`parameters` (values already typed)."""
        check_keys(self.name, list(params), self.parameters())

    def parse_params(self, texts: Mapping[str, str]) -> dict[str, Any]:
        """``{"epochs": "5", "taus": "1,2"}`` -> values converted by their annotations."""
        known = self.parameters()
        check_keys(self.name, list(texts), known)
        return {key: convert(key, text, known[key].annotation) for key, text in texts.items()}

    @property
    def reads_pixels(self) -> bool:
        """True when the saved model classifies the images themselves (asd), not feature views."""
        return PIXELS in self.predict_inputs({}).values()

    def estimator_names(self) -> tuple[str, ...]:
        """The class name a saved model of this method carries, then former ones."""
        return (self.estimator.__name__, *self.former_estimators)


def view_input(info: Mapping[str, Any]) -> dict[str, str]:
    """``predict(X)`` from the view the method was fitted on (``info["view"]``)."""
    return {"X": str(info.get("view", "joint"))}
