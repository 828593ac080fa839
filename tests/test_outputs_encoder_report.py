"""The bridge report: metrics on known geometry, one forward pass for many variants, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from semclust.cli.encoders_cmd import encoders_app
from semclust.encoders.base import l2_normalize
from semclust.outputs.encoder_report import evaluate_bridge, score_views, zeroshot_accuracy


def blobs(n_per: int = 15, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:3] * 10
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(3), n_per)


class StubOffline:
    """Features/logits in, a joint view out; counts forward passes."""

    name = "stub"

    def __init__(self, scale: float = 1.0, calls: list | None = None) -> None:
        self.scale, self.calls = scale, calls if calls is not None else []

    def visual_and_logits(self, images):
        self.calls.append(len(images))
        x, _ = blobs()
        return x[: len(images)], torch.as_tensor(x[: len(images), :3])

    def encode_texts(self, texts):
        return np.stack([np.eye(6)[int(t.split()[-1].rstrip("."))] for t in texts]).astype(np.float32)

    def with_bridge(self, **options):
        return StubOffline(options.get("scale", 1.0), self.calls)

    def joint_from(self, features, logits):
        x = features.copy()
        x[:, 0] *= self.scale  # scale 0 wipes out class 0's direction
        return l2_normalize(x)

    def bridge_description(self):
        return {"kind": "stub", "scale": self.scale}

    def config(self):
        return {"spec": "stub", "options": {"scale": self.scale}}


def test_scores_on_separable_blobs() -> None:
    x, y = blobs()
    record = score_views(l2_normalize(x), l2_normalize(x), y, np.eye(6)[:3])
    assert record["knn10_purity_visual"] == pytest.approx(1.0)
    assert record["kmeans_acc_joint"] == pytest.approx(1.0) and record["acc"] == record["kmeans_acc_joint"]
    assert record["zeroshot_acc"] == pytest.approx(1.0)
    assert zeroshot_accuracy(x, np.where(y == 0, -1, y), np.eye(6)[:3]) == pytest.approx(1.0)


def test_variants_come_from_one_forward_pass() -> None:
    x, y = blobs()
    stub = StubOffline()
    images = [None] * len(y)
    records = evaluate_bridge(stub, y, ["0", "1", "2"], images=images, variants=[{"scale": 1.0}, {"scale": 0.0}])
    assert stub.calls == [len(y)]  # embedded once
    assert len(records) == 2 and records[0]["bridge"] == {"kind": "stub", "scale": 1.0}
    assert records[0]["images_per_s"] > 0 and records[0]["n"] == len(y)
    assert records[0]["zeroshot_acc"] == pytest.approx(1.0)
    assert records[1]["zeroshot_acc"] < records[0]["zeroshot_acc"]
    assert records[0]["knn10_purity_visual"] == records[1]["knn10_purity_visual"]
    with pytest.raises(ValueError, match="needs images"):
        evaluate_bridge(stub, y, None)
    with pytest.raises(ValueError, match="labels"):
        evaluate_bridge(stub, y[:-1], None, images=images)


runner = CliRunner()


def cli(*args: str):
    app = typer.Typer()
    app.add_typer(encoders_app, name="encoders")
    return runner.invoke(app, ["encoders", *args], catch_exceptions=False)


def test_cli_evaluate_prints_and_saves(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = cli(
        "evaluate", "--encoder", "offline:image_size=64,bridge=linear", "--dataset", "digits",
        "--limit", "40", "--out", str(out),
    )
    assert result.exit_code == 0, result.output
    assert "kNN-10 purity visual" in result.output and "images/s" in result.output
    (record,) = json.loads(out.read_text())
    assert record["n"] == 40 and record["options"]["bridge"] == "linear" and record["dataset"] == "digits"
    for key in ("knn10_purity_joint", "zeroshot_acc", "kmeans_nmi_visual", "kmeans_ari_joint", "images_per_s"):
        assert 0 <= record[key] <= (1 if key != "images_per_s" else 1e9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--dataset", "nosuch"), "nosuch"),
        (("--dataset", "digits", "--limit", "5"), "--limit"),
        (("--dataset", "digits", "--encoder", "offline:bridge=nosuch"), "bridge must"),
    ],
)
def test_cli_user_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = cli("evaluate", *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
