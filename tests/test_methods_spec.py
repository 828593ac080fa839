"""Every method's spec: one table the CLI, the workflow and saved models read."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.methods.registry import METHODS, RESUMABLE_METHODS, get_spec, spec_for_estimator
from semclust.methods.spec import PIXELS, VIEWS

runner = CliRunner()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_spec_is_consistent(name: str) -> None:
    spec = METHODS[name]
    assert spec.name == name and spec.summary
    fit_args = inspect.signature(spec.fit).parameters
    assert list(fit_args)[:3] == ["features", "n_clusters", "random_state"]
    assert spec.resumable == ("checkpoint_dir" in fit_args and "resume" in fit_args)
    # every predict argument a saved model maps is an argument of the estimator's predict
    predict_args = inspect.signature(spec.estimator.predict).parameters
    assert set(spec.predict_args) <= set(predict_args)
    inputs = spec.predict_inputs({})
    assert spec.predict_args[0] in inputs and set(inputs.values()) <= {*VIEWS, PIXELS}
    assert spec_for_estimator(spec.estimator.__name__) is spec


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_estimator_clones(name: str) -> None:
    estimator = METHODS[name].estimator(**({} if name == "zeroshot" else {"n_clusters": 3}))
    copy = clone(estimator)
    assert type(copy) is type(estimator) and copy is not estimator
    assert copy.get_params(deep=True).keys() == estimator.get_params(deep=True).keys()


def test_parameters_are_the_estimators_plus_the_fit_functions() -> None:
    tac = get_spec("tac").parameters()
    assert "image_view" in tac and "epochs" in tac and "n_clusters" not in tac
    assert set(get_spec("kmeans").parameters()) == {"view", "n_init"}
    assert get_spec("tac").parse_params({"betas": "0.8,0.9", "n_centers": "none"}) == {
        "betas": (0.8, 0.9),
        "n_centers": None,
    }
    assert RESUMABLE_METHODS == {"tac", "laic", "scan", "asd"}


def test_methods_command_lists_every_method_and_a_methods_parameters() -> None:
    listing = runner.invoke(app, ["methods"])
    assert listing.exit_code == 0
    for name in METHODS:
        assert any(line.startswith(name + " ") for line in listing.output.splitlines())
    one = runner.invoke(app, ["methods", "scan"])
    assert one.exit_code == 0 and "n_heads: int (default 1)" in one.output
    bad = runner.invoke(app, ["methods", "nope"])
    assert bad.exit_code == 2 and "unknown method 'nope'" in bad.output


@pytest.fixture()
def tiny_folder(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--k", "3", "--param", "epochz=1", "--method", "tac"], "has no parameter 'epochz'; its parameters:"),
        (["--k", "3", "--param", "epochs=abc", "--method", "tac"], "--param epochs=abc: expected int"),
        (["--k", "0"], "--k must be 'auto' or an integer of at least 2"),
        (["--k", "3", "--method", "kmeanz"], "unknown method 'kmeanz'"),
    ],
)
def test_mistakes_fail_before_embedding_and_leave_no_run_directory(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str
) -> None:
    import semclust.workflow as workflow

    def no_embedding(*a: object, **k: object) -> None:
        raise AssertionError("embedded before the arguments were checked")

    monkeypatch.setattr(workflow, "embed", no_embedding)
    out = tmp_path / "run"
    result = runner.invoke(app, ["cluster", str(tiny_folder), "--out", str(out), *args])
    assert result.exit_code == 2 and fragment in result.output
    assert not out.exists()


def test_python_api_checks_parameters_before_embedding(tiny_folder: Path, tmp_path: Path) -> None:
    from semclust import workflow

    with pytest.raises(ValueError, match="has no parameter 'bogus'"):
        workflow.cluster(
            str(tiny_folder), method="kmeans", n_clusters=2, out=tmp_path / "r", method_options={"bogus": 1}
        )
    with pytest.raises(ValueError, match="at least 2"):
        workflow.cluster(str(tiny_folder), method="kmeans", n_clusters=1, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_run_that_fails_after_creating_its_directory_removes_it(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import semclust.workflow as workflow

    def broken(*a: object, **k: object) -> None:
        raise ValueError("encoder exploded")

    monkeypatch.setattr(workflow, "embed", broken)
    with pytest.raises(ValueError, match="exploded"):
        workflow.cluster(str(tiny_folder), method="kmeans", n_clusters=2, out=tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    kept = tmp_path / "kept"
    (kept / "checkpoint").mkdir(parents=True)
    (kept / "checkpoint" / "state.json").write_text("{}")
    with pytest.raises(ValueError, match="exploded"):
        workflow.cluster(str(tiny_folder), method="kmeans", n_clusters=2, out=kept, resume=True)
    assert (kept / "checkpoint" / "state.json").is_file()  # a directory it did not create is left alone


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("kmeans", "KMeansClusterer", "KMeans"),
        ("scan", "SCANClusterer", "SCAN"),
        ("zeroshot", "ZeroShotClusterer", "ZeroShot"),
    ],
)
def test_former_class_names_still_work_for_one_release_and_warn(module: str, old: str, new: str) -> None:
    import importlib

    import semclust

    target = importlib.import_module(f"semclust.methods.{module}")
    with pytest.warns(DeprecationWarning, match=f"{old} is now {new}"):
        assert getattr(target, old) is getattr(target, new)
    with pytest.warns(DeprecationWarning):
        assert getattr(semclust, old) is getattr(target, new)
    assert old in get_spec(module).estimator_names()  # saved models of the old name still load


def test_every_method_names_clusters_with_one_name_each() -> None:
    from semclust.methods.laic_notrain import LAICNoTrain

    rng = np.random.default_rng(0)
    centers = np.eye(4, 16, dtype=np.float32)
    x = np.repeat(centers, 20, axis=0) + 0.05 * rng.standard_normal((80, 16)).astype(np.float32)
    nouns = np.concatenate([centers, rng.standard_normal((8, 16)).astype(np.float32)])
    names = [f"noun{i}" for i in range(len(nouns))]
    model = LAICNoTrain(n_clusters=4, n_centers=4, n_init=2).fit(x, nouns, noun_names=names)
    assert len(model.cluster_names_) == 4 and all("," not in n for n in model.cluster_names_)
    assert [row[0] for row in model.cluster_nouns_] == model.cluster_names_


def test_renamed_fit_keywords_warn_and_still_work() -> None:
    from semclust.methods.tac_notrain import TACNoTrain

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    image = rng.standard_normal((60, 5)).astype(np.float32)
    nouns = rng.standard_normal((30, 8)).astype(np.float32)
    new = TACNoTrain(n_clusters=3, n_centers=3, n_init=2, noun_n_init=2).fit(x, nouns, image_features=image)
    with pytest.warns(DeprecationWarning, match="image_feats= is now image_features="):
        old = TACNoTrain(n_clusters=3, n_centers=3, n_init=2, noun_n_init=2).fit(x, nouns, image_feats=image)
    assert np.array_equal(new.labels_, old.labels_)
    with pytest.raises(TypeError, match="both"):
        TACNoTrain(n_clusters=3).fit(x, nouns, image_feats=image, image_features=image)


def test_models_saved_under_the_former_names_still_load(tmp_path: Path) -> None:
    import json

    from semclust.methods.kmeans import KMeans
    from semclust.outputs.model import load_model, save_model

    x = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    model = KMeans(n_clusters=3, n_init=1).fit(x)
    save_model(tmp_path, method="kmeans", estimator=model, inputs={"X": "visual"}, encoder_config={},
               n_clusters=3, cluster_names=None)  # fmt: skip
    manifest_path = tmp_path / "model.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["estimator"] == "KMeans"
    manifest["estimator"] = "KMeansClusterer"  # what a model saved before the rename says
    manifest_path.write_text(json.dumps(manifest))
    loaded = load_model(tmp_path)
    assert isinstance(loaded.estimator, KMeans)
    assert np.array_equal(loaded.predict_features({"visual": x}), model.labels_)


@pytest.mark.parametrize("name", ["FixMatch", "FixMatchLA", "CPE", "MetaExpert", "TACNoTrain", "LAICNoTrain"])
def test_every_public_estimator_clones(name: str) -> None:
    import semclust

    estimator = getattr(semclust, name)()
    copy = clone(estimator)
    assert type(copy) is type(estimator) and copy.get_params() == estimator.get_params()


def test_ssl_run_functions_take_random_state_and_warn_on_seed() -> None:
    import inspect

    from semclust.ssl.experiment import run_longtail, run_ssl
    from semclust.ssl.run_data import balanced_data, longtail_data

    for function in (run_ssl, run_longtail, balanced_data, longtail_data):
        parameters = inspect.signature(function).parameters
        assert "random_state" in parameters and "seed" not in parameters, function.__name__
    with pytest.warns(DeprecationWarning, match="seed= is now random_state="):
        data = balanced_data("digits", 2, seed=3)
    assert np.array_equal(data.x_lb, balanced_data("digits", 2, random_state=3).x_lb)


def test_run_ssl_writes_to_out_and_warns_on_out_dir(tmp_path: Path) -> None:
    from semclust.ssl.experiment import run_ssl
    from semclust.ssl.run_data import balanced_data

    data = balanced_data("digits", 2, random_state=0, image_size=8)
    run_ssl("fixmatch", data, steps=2, batch_size=4, mu=1, out=tmp_path / "new")
    assert (tmp_path / "new" / "run.json").is_file()
    with pytest.warns(DeprecationWarning, match="out_dir= is now out="):
        run_ssl("fixmatch", data, steps=2, batch_size=4, mu=1, out_dir=tmp_path / "old")
    assert (tmp_path / "old" / "run.json").is_file()


def test_saved_model_inputs_are_pixels_for_asd_and_views_for_the_rest() -> None:
    from semclust.outputs.model import _check_inputs

    assert get_spec("asd").reads_pixels and not get_spec("kmeans").reads_pixels
    assert _check_inputs("asd", {"X": "pixels"}, "t") == {"X": "pixels"}
    with pytest.raises(ValueError, match="unknown view 'visual'"):
        _check_inputs("asd", {"X": "visual"}, "t")
    with pytest.raises(ValueError, match="unknown view 'pixels'"):
        _check_inputs("kmeans", {"X": "pixels"}, "t")
