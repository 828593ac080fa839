"""Run every CUDA path of semclust once and say which pass: ``bash scripts/gpu_check.sh``.

Each check prints one line (``PASS``, ``FAIL`` or ``SKIP``, its name, its seconds, what it
compared) and the whole run is written to ``benchmarks/results/gpu.json`` (device name, each
path's status, time and figures). Checks compare a CUDA result against the CPU result of the
same command where the two should agree, and otherwise check that the run finished with sane
numbers. About 2-4 minutes on one GPU; digits (bundled with scikit-learn) is the only data.

Without a CUDA device it prints ``no CUDA device: ...``, writes nothing and exits 3. Exit 1 if
any check failed, else 0 (a SKIP is an optional component that is not installed, or a second
GPU that is not there).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gpu.json"
NO_CUDA_EXIT = 3


class Skip(Exception):
    """An optional component is missing: the check did not run."""


def semclust(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    return run([sys.executable, "-m", "semclust", *args], timeout=timeout, env=env)


def run(cmd: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:6])} exited {done.returncode}: {done.stdout[-1500:]}")
    return done.stdout


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


class GpuCheck:
    """``device="cpu"`` only for ``--dry-run-on-cpu``: the same commands with cuda replaced."""

    def __init__(self, work: Path, device: str = "cuda") -> None:
        import torch

        self.work = work
        self.device = device
        # The dry run only checks the plumbing: smaller images and fewer steps on 2 CPU cores.
        self.image_option = ",image_size=32" if device == "cpu" else ""
        self.steps = "20" if device == "cpu" else "300"
        self.torch = torch
        self.records: list[dict[str, Any]] = []
        self.stores: dict[str, Path] = {}

    # ------------------------------------------------------------ bookkeeping
    def check(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        start = time.perf_counter()
        try:
            detail, status = fn(), "pass"
        except Skip as why:
            detail, status = {"reason": str(why)}, "skip"
        except Exception as err:  # one failing path must not hide the others
            detail, status = (
                {"error": f"{type(err).__name__}: {err}"[-2000:], "trace": traceback.format_exc()[-3000:]},
                "fail",
            )
        wall = time.perf_counter() - start
        summary = "; ".join(f"{k} {v}" for k, v in detail.items() if k != "trace")
        print(f"{status.upper():4}  {name:<28} {wall:7.1f}s  {summary[:300]}", flush=True)
        self.records.append(
            {"method": name, "dataset": detail.pop("dataset", "digits"), "seed": 0, "status": status,
             "passed": status == "pass", "wall_s": round(wall, 3), **detail}
        )  # fmt: skip

    # ------------------------------------------------------------ encoders
    def embed(self, name: str, *args: str, env: dict[str, str] | None = None) -> Path:
        out = self.work / name
        semclust("embed", "dataset:digits", "--out", str(out), "--dtype", "float32", "--force", *args, env=env)
        self.stores[name] = out
        return out

    def compare_stores(self, a: Path, b: Path) -> dict[str, Any]:
        """Row cosines between two stores of the same items.

        The visual view must agree row by row (cuDNN convolutions run in TF32 by default, so
        the 4th digit may differ). The joint view is a top-T weighted sum of class texts, and on
        digits (8x8 images, far from ImageNet) the class probabilities are flat, so a 1e-6 change
        in the logits (another batch split, another kernel) swaps classes at the top-T boundary:
        it is held to its mean cosine (measured: Ray against local on CPU, min 0.959, mean 0.989).
        """
        from semclust.store.feature_store import FeatureStore

        sa, sb = FeatureStore(a), FeatureStore(b)
        if sa.ids != sb.ids:
            raise AssertionError(f"{a.name} and {b.name} hold different items")
        figures: dict[str, Any] = {"n": len(sa.ids)}
        for view in sa.views:
            cos = row_cosines(sa.load(view), sb.load(view))
            figures[f"min_cos_{view}"] = round(float(cos.min()), 6)
            figures[f"mean_cos_{view}"] = round(float(cos.mean()), 6)
        if figures.get("min_cos_visual", 1.0) < 0.999 or figures.get("mean_cos_joint", 1.0) < 0.98:
            raise AssertionError(f"{a.name} and {b.name} disagree: {figures}")
        return figures

    def encoder_torch(self) -> dict[str, Any]:
        cpu = self.embed("cpu-torch", "--device", "cpu", "--encoder", f"offline:backend=torch{self.image_option}")
        cuda = self.embed(
            "cuda-torch", "--device", self.device, "--encoder", f"offline:backend=torch{self.image_option}"
        )
        return {**self.compare_stores(cpu, cuda), "against": "same encoder on CPU"}

    def cuda_store(self) -> Path:
        """Digits embedded with the PyTorch encoder on CUDA (built once)."""
        if "cuda-torch" not in self.stores:
            self.embed("cuda-torch", "--device", self.device, "--encoder", f"offline:backend=torch{self.image_option}")
        return self.stores["cuda-torch"]

    def encoder_onnx(self) -> dict[str, Any]:
        try:
            import onnxruntime
        except ImportError:
            raise Skip("onnxruntime is not installed") from None
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise Skip(f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider (onnxruntime-gpu)")
        cuda = self.embed("cuda-onnx", "--device", self.device, "--encoder", f"offline:backend=onnx{self.image_option}")
        described = " ".join(p.read_text() for p in cuda.glob("*.json"))
        if '"backend": "onnx"' not in described:
            raise AssertionError("the store does not record the onnx backend: the encoder fell back to PyTorch")
        if "cpu-torch" not in self.stores:
            self.embed("cpu-torch", "--device", "cpu", "--encoder", f"offline:backend=torch{self.image_option}")
        return {**self.compare_stores(self.stores["cpu-torch"], cuda), "against": "PyTorch encoder on CPU"}

    # ------------------------------------------------------------ neighbours and k-means
    def blobs(self, n: int = 20000, d: int = 64, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        centers = rng.normal(size=(k, d)).astype(np.float32)
        labels = rng.integers(0, k, n)
        return (centers[labels] + 0.15 * rng.normal(size=(n, d))).astype(np.float32), labels

    def knn_torch(self) -> dict[str, Any]:
        from semclust.ops.ann import recall_at_k, torch_knn
        from semclust.ops.knn import knn

        x, _ = self.blobs()
        ref, _ = knn(x, 10)
        got, _ = torch_knn(x, 10, device=self.device)
        recall = recall_at_k(got, ref)
        if recall < 0.99:  # float16 base rows on CUDA: near-ties may swap
            raise AssertionError(f"recall@10 against faiss on CPU {recall:.4f} < 0.99")
        return {"recall_at_10_vs_cpu": round(recall, 5), "n": len(x)}

    def faiss_gpus(self) -> int:
        import faiss

        count = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if count == 0:
            raise Skip("faiss is the CPU build (faiss-cpu): no GPU indices")
        return int(count)

    def knn_faiss(self) -> dict[str, Any]:
        from semclust.ops.ann import ann_knn, recall_at_k

        self.faiss_gpus()
        x, _ = self.blobs()
        figures = {}
        for index in ("exact", "ivf"):
            ref, _ = ann_knn(x, 10, index=index, device="cpu")
            got, _ = ann_knn(x, 10, index=index, device="cuda")
            figures[f"recall_{index}_vs_cpu"] = round(recall_at_k(got, ref), 5)
        if min(figures.values()) < 0.98:
            raise AssertionError(f"GPU and CPU neighbours disagree: {figures}")
        return figures

    def kmeans_faiss(self) -> dict[str, Any]:
        import faiss

        from semclust.metrics import evaluate
        from semclust.ops.kmeans import spherical_kmeans

        self.faiss_gpus()
        x, labels = self.blobs()
        cpu = spherical_kmeans(x, 20, random_state=0).labels
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        km = faiss.Kmeans(x.shape[1], 20, niter=100, nredo=5, seed=0, spherical=True, gpu=True, verbose=False)
        km.train(xn)
        _, gpu = km.index.search(xn, 1)
        agreement = evaluate(cpu, gpu.ravel())["acc"]
        if agreement < 0.99:
            raise AssertionError(f"GPU and CPU k-means labels agree on {agreement:.4f} < 0.99 of points")
        return {"agreement_vs_cpu": round(float(agreement), 5), "acc_vs_truth": round(evaluate(labels, cpu)["acc"], 4)}

    # ------------------------------------------------------------ clustering methods
    def cluster(self, method: str, *params: str) -> dict[str, Any]:
        store = self.cuda_store()
        out = self.work / f"run-{method}"
        args = ["cluster", str(store), "--method", method, "--k", "10", "--out", str(out), "--force", "--no-names"]
        if self.device == "cpu":  # dry run: every 200th noun instead of WordNet's (MiniLM on 2 cores is slow)
            from semclust.vocab.nouns import wordnet_nouns

            nouns = self.work / "nouns.txt"
            nouns.write_text("\n".join(dict.fromkeys(wordnet_nouns().names[::200])) + "\n")
            args += ["--vocabulary", str(nouns)]
        semclust(*args, "--device", self.device, "--param", f"device={self.device}", *params)
        metrics = json.loads((out / "metrics.json").read_text())
        acc = float(metrics["acc"])
        if not 0.2 < acc <= 1.0:  # digits has 10 classes: chance is 0.1
            raise AssertionError(f"{method} on CUDA: ACC {acc}")
        return {"acc": round(acc, 4), "nmi": round(float(metrics["nmi"]), 4)}

    # ------------------------------------------------------------ semi-supervised training
    def ssl(self, method: str, *args: str) -> dict[str, Any]:
        out = self.work / f"ssl-{method}"
        semclust("ssl", method, "--dataset", "digits", "--steps", self.steps, "--device", self.device, "--amp",
                 "--out", str(out), "--force", *args)  # fmt: skip
        metrics = json.loads((out / "metrics.json").read_text())
        config = json.loads((out / "run.json").read_text()).get("config", {})
        if not config.get("amp"):
            raise AssertionError(f"run.json of {method} does not record amp")
        acc = metrics.get("acc")
        if acc is None or not (0.2 if self.steps == "300" else 0.0) < float(acc) <= 1.0:
            raise AssertionError(f"{method} with --amp on CUDA: ACC {acc}")
        return {"acc": round(float(acc), 4), "steps": int(self.steps), "amp": "float16 + GradScaler"}

    # ------------------------------------------------------------ DDP on nccl
    def ddp_nccl(self) -> dict[str, Any]:
        script = self.work / "ddp_nccl.py"
        script.write_text(DDP_SCRIPT)
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        gpus = self.torch.cuda.device_count()
        nproc = max(1, min(2, gpus))
        env = dict(os.environ, GPU_CHECK_DEVICE=self.device)
        out = run([torchrun, "--standalone", "--nproc-per-node", str(nproc), str(script)], timeout=300, env=env)
        result = json.loads(out.strip().splitlines()[-1])
        if not result["ok"]:
            raise AssertionError(f"DDP on nccl: {result}")
        figures: dict[str, Any] = {"processes": nproc, **result}
        # The package's own loops join a process group only with WORLD_SIZE > 1, so semclust's
        # DDP trainer on nccl needs two GPUs (nccl refuses two ranks on one GPU).
        if gpus >= 2:
            ssl_out = self.work / "ssl-ddp"
            run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "semclust", "ssl", "fixmatch", "--dataset",
                 "digits", "--labels-per-class", "4", "--steps", "100", "--device", self.device, "--out", str(ssl_out),
                 "--force"], timeout=300)  # fmt: skip
            config = json.loads((ssl_out / "run.json").read_text())["config"]
            figures["semclust_fixmatch_world_size"] = config.get("world_size")
        else:
            figures["semclust_trainer_ddp"] = "not run: needs 2 GPUs"
        return figures

    # ------------------------------------------------------------ Ray
    def ray_gpu(self) -> dict[str, Any]:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise Skip("Ray is not installed") from None
        out = self.embed(
            "ray-cuda", "--engine", "ray", "--device", "auto", "--encoder", f"offline:backend=torch{self.image_option}"
        )
        reference = self.cuda_store()
        return {**self.compare_stores(reference, out), "against": reference.name}


DDP_SCRIPT = """
import json, os, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
cuda = os.environ.get("GPU_CHECK_DEVICE", "cuda") == "cuda"
expected = "nccl" if cuda else "gloo"
dist.init_process_group(expected)
device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
if cuda:
    torch.cuda.set_device(device)
torch.manual_seed(0)
model = DistributedDataParallel(torch.nn.Linear(32, 4).to(device), device_ids=[device.index] if cuda else None)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(50):
    x = torch.randn(64, 32, device=device)
    loss = model(x).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
total = torch.tensor([float(rank + 1)], device=device)
dist.all_reduce(total)
same = True
for p in model.parameters():
    gathered = [torch.zeros_like(p) for _ in range(world)]
    dist.all_gather(gathered, p.detach())
    same = same and all(torch.equal(g, gathered[0]) for g in gathered)
ok = same and total.item() == world * (world + 1) / 2 and dist.get_backend() == expected
if rank == 0:
    print(json.dumps({"ok": bool(ok), "backend": dist.get_backend(), "all_reduce": total.item(),
                      "weights_equal_on_ranks": bool(same), "final_loss": round(loss.item(), 6)}))
dist.destroy_process_group()
"""


def main(argv: list[str]) -> int:
    import torch

    # --dry-run-on-cpu: the same commands on the CPU, to check this script itself on a machine
    # without a GPU. It proves nothing about CUDA and writes no results.
    dry_run = "--dry-run-on-cpu" in argv
    if not torch.cuda.is_available() and not dry_run:
        print(f"no CUDA device: torch {torch.__version__} sees no GPU; nothing was checked, {RESULTS.name} not written")
        return NO_CUDA_EXIT
    work = Path(tempfile.mkdtemp(prefix="semclust-gpu-check-"))
    os.environ.setdefault("SEMCLUST_CACHE", str(work / "cache"))
    gpu = GpuCheck(work, device="cpu" if dry_run else "cuda")
    name = "cpu (dry run)" if dry_run else torch.cuda.get_device_name(0)
    print(f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}; scratch {work}", flush=True)
    started = time.perf_counter()
    try:
        checks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("encoder-offline-torch-cuda", gpu.encoder_torch),
            ("encoder-offline-onnx-cuda", gpu.encoder_onnx),
            ("knn-exact-torch-cuda", gpu.knn_torch),
            ("knn-faiss-gpu", gpu.knn_faiss),
            ("kmeans-faiss-gpu", gpu.kmeans_faiss),
            ("laic-train-cuda", lambda: gpu.cluster("laic")),
            ("scan-train-cuda", lambda: gpu.cluster("scan")),
            ("fixmatch-amp-cuda", lambda: gpu.ssl("fixmatch", "--labels-per-class", "4")),
            ("metaexpert-amp-cuda", lambda: gpu.ssl("metaexpert", "--n1", "40", "--m1", "80", "--gamma-l", "10")),
            ("ddp-nccl-torchrun", gpu.ddp_nccl),
            ("ray-gpu-actors", gpu.ray_gpu),
        ]
        # --only a,b: just those checks (e.g. to rerun a failed one); the results file then holds only them.
        only = argv[argv.index("--only") + 1].split(",") if "--only" in argv else None
        for name, fn in checks:
            if only is None or name in only:
                gpu.check(name, fn)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = {"device": name, "gpus": torch.cuda.device_count(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "python": platform.python_version()}  # fmt: skip
    records = [{**header, **r} for r in gpu.records]
    if not dry_run:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(records, indent=1) + "\n")
    failed = [r["method"] for r in records if r["status"] == "fail"]
    skipped = [r["method"] for r in records if r["status"] == "skip"]
    print(
        f"{len(records) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} skipped "
        f"in {time.perf_counter() - started:.0f}s" + ("" if dry_run else f"; wrote {RESULTS.relative_to(REPO)}")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
