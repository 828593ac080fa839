"""LAIC training under DDP: 2 gloo processes end with the centers of one process.

Every rank draws the same global batches and keeps its part; the batch-mean prediction of the
entropy term is all-reduced. LAIC has no batch norm, so the two processes must follow the
one-process trajectory (up to float summation order), also when a batch does not split evenly
(batches of 48 whose last one is shorter, or batches of 1 where one rank's part is empty), and
rank 0 alone writes the checkpoint. A DDP run killed after an epoch resumes to the uninterrupted
centers. Through the command line, ``torchrun -m semclust cluster --method laic`` writes the run
that one process writes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fakes import colour_images
from PIL import Image

from semclust.distributed import leave_process_group
from semclust.methods.laic import LAIC
from semclust.ops.features import l2_normalize
from semclust.store.checkpoint import EpochCheckpoint, TrainingState

K, PER, D = 4, 40, 16
EPOCHS = 4
BATCH_SIZES = (48, 1)


def _data() -> dict[str, Any]:
    """K spherical clusters in a joint space, with a planted noun on each mean plus distractors."""
    rng = np.random.default_rng(0)
    means = l2_normalize(rng.standard_normal((K, D)).astype(np.float32))
    y = np.repeat(np.arange(K), PER)
    x = l2_normalize((means[y] + 0.6 * rng.standard_normal((len(y), D)) / np.sqrt(D)).astype(np.float32))
    nouns = l2_normalize(np.concatenate([means, rng.standard_normal((12, D))]).astype(np.float32))
    names = [f"planted{c}" for c in range(K)] + [f"distractor{i}" for i in range(12)]
    return {"x": x, "y": y, "nouns": nouns, "names": names}


def _laic(batch_size: int, epochs: int = EPOCHS) -> LAIC:
    return LAIC(n_clusters=K, n_centers=8, centers="free", epochs=epochs, batch_size=batch_size, lr=1e-2,
                temperature=0.2, n_init=2, torch_threads=1)  # fmt: skip


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    def on_epoch(e: int, loss: float) -> None:
        if e == epoch:
            raise _Stop  # its checkpoint is written before on_epoch is called

    return on_epoch


def _fits(root: Path) -> dict[str, Any]:
    """The fits compared between one process and two: plain, and killed after epoch 2 then resumed."""
    data = _data()
    result: dict[str, Any] = {}
    for bs in BATCH_SIZES:
        model = _laic(bs).fit(data["x"], data["nouns"], data["names"], checkpoint_dir=root / f"checkpoint{bs}")
        result[bs] = {"centers": model.centers_, "labels": model.labels_, "history": model.loss_history_}
    killed_dir = root / "killed"
    with pytest.raises(_Stop):
        _laic(48).fit(data["x"], data["nouns"], data["names"], on_epoch=_stop_after(1), checkpoint_dir=killed_dir)
    resumed = _laic(48).fit(data["x"], data["nouns"], data["names"], checkpoint_dir=killed_dir, resume=True)
    result["resumed"] = {"centers": resumed.centers_, "history": resumed.loss_history_}
    return result


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})  # fmt: skip
    torch.set_num_threads(1)
    saves: list[int] = []
    save = EpochCheckpoint.save

    def recording_save(self: EpochCheckpoint, state: TrainingState) -> None:
        saves.append(state.epoch)
        save(self, state)

    EpochCheckpoint.save = recording_save  # type: ignore[method-assign]
    root = Path(out) / "shared"
    result = _fits(root)
    result["saves"] = saves
    torch.save(result, Path(out) / f"rank{rank}.pt")
    leave_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_train_laic_like_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.multiprocessing as mp

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    try:
        alone = _fits(tmp_path / "alone")  # fit sets torch to 1 thread while training
        mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    for bs in BATCH_SIZES:
        for r in range(2):
            np.testing.assert_allclose(ranks[r][bs]["centers"], alone[bs]["centers"], atol=1e-5, err_msg=f"bs {bs}")
            np.testing.assert_array_equal(ranks[r][bs]["labels"], alone[bs]["labels"])
            np.testing.assert_allclose(ranks[r][bs]["history"], alone[bs]["history"], rtol=1e-5)
        np.testing.assert_array_equal(ranks[0][bs]["centers"], ranks[1][bs]["centers"])  # bit-identical ranks
    # training moved the centers (the comparison above is not between two initial states)
    assert alone[48]["history"][-1] < alone[48]["history"][0]

    for r in range(2):
        np.testing.assert_allclose(ranks[r]["resumed"]["centers"], alone[48]["centers"], atol=1e-5)
        np.testing.assert_allclose(ranks[r]["resumed"]["history"], alone[48]["history"], rtol=1e-5)
    # rank 0 saved every epoch: 4 + 4 for the plain fits, 2 before the kill, 2 after the resume
    assert ranks[0]["saves"] == [1, 2, 3, 4] * 3 and ranks[1]["saves"] == []


def test_torchrun_cluster_laic_writes_the_one_process_run(tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 2 -m semclust cluster ... --method laic`` (gloo, MiniLM prompt centers).

    Rank 0 embeds the folder while rank 1 waits, both train, rank 0 alone writes the run: the
    same assignments as ``python -m semclust`` alone.
    """
    photos = tmp_path / "photos"
    images, labels = colour_images(18, seed=3)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = photos / ["red", "green", "blue"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((32, 32)).save(folder / f"img{i:02d}.png")
    vocabulary = tmp_path / "nouns.txt"
    vocabulary.write_text("red apple\ngreen leaf\nblue sky\ncat\ncar\n")
    args = ["-m", "semclust", "cluster", str(photos), "--k", "3", "--method", "laic", "--labels-from-folders",
            "--encoder", "offline:image_size=64", "--vocabulary", str(vocabulary),
            "--param", "epochs=2", "--param", "n_neighbours=5"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]  # fmt: skip
    # first under torchrun, so that rank 0 embeds the folder (a cold cache) while rank 1 waits
    ddp = subprocess.run([*launcher, *args, "--out", str(tmp_path / "ddp")], env=env, capture_output=True, text=True,
                         timeout=240)  # fmt: skip
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-4000:]
    assert (ddp.stdout + ddp.stderr).count("wrote ") == 1  # rank 0 reports; rank 1 neither writes nor prints
    alone = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "alone")], env=env, capture_output=True,
                           text=True, timeout=240)  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-4000:]
    for name in ("assignments.csv", "clusters.json"):
        assert (tmp_path / "ddp" / name).read_text() == (tmp_path / "alone" / name).read_text()
    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert written == ["assignments.csv", "clusters.json", "metrics.json", "model", "run.json"]
