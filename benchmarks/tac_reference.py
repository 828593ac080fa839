"""TAC's public code against semclust's TAC on the same cached embeddings (issue 17).

For each dataset (Fashion-MNIST test, digits) and seed, both implementations get the same
inputs: the offline encoder's joint image embeddings (used for the image side and the text
side alike, as the public code uses one CLIP embedding for both) and the same noun-vocabulary
embeddings from semclust's text cache, with the same k' (``default_n_centers(N, K)``). Records
``tac-public`` / ``tac`` (trained heads) and ``tac-notrain-public`` / ``tac-notrain``
(k-means on ``[u ; t]``) with acc/nmi/ari into ``benchmarks/results/tac_reference.json``.

The public code (github.com/XLearning-SCU/2024-ICML-TAC) is never copied into this project:
``--tac-repo DIR`` names a local checkout (a work tree, or a bare git directory whose HEAD is
exported). For every (dataset, seed) its files are copied into a temporary directory and
patched there so that they run on this CPU-only machine without CLIP, timm, torchvision or
munkres (none of which the scripts need for pre-computed embeddings):

* ``.cuda()`` removed, ``.half()`` -> ``.float()`` (float16 matmuls on CPU), float16 buffers
  -> float32; faiss ``gpu=True`` -> ``False`` and ``index_cpu_to_all_gpus(index)`` -> ``index``;
* ``import clip`` dropped and timm's ``trunc_normal_`` replaced by ``torch.nn.init``'s (same
  truncation at +-2, same std); torchvision imports dropped (only used for image loading);
* ``from eval_utils import cluster_metric`` replaced by a no-op (munkres): predictions are
  saved (``np.save`` appended to ``concat_kmeans.py`` and ``train_head.py``) and scored here with
  ``semclust.metrics.evaluate``, the same scorer as semclust's runs;
* the hard-coded k' (167), embedding width (512) and faiss k-means seed (1234 by default) are
  set to this run's k', the embedding width and the seed; Python/numpy/torch are seeded at the
  top of each script (the public scripts set no seed).

The scripts run in TAC's order: ``filter_nouns.py`` (twice: its first run caches the image
k-means and exits), ``retrieve_text.py``, ``concat_kmeans.py``, ``train_head.py`` (twice: its
first run caches the neighbours and exits). The dataset switch of the scripts stays
``CIFAR-10``: it only sets K = 10 and file names, and both datasets here have ten classes.

Both sides use TAC's vocabulary, all 82,115 WordNet noun synsets (``--vocabulary wordnet-all``;
records without a ``vocabulary`` key were made with it too). ``--semclust-only`` keeps the
recorded public runs (the public code and the embeddings are unchanged, and its runs are seeded)
and recomputes semclust's side of every recorded (dataset, seed): the public side is what costs
the time (140-830 s per pair here).

Run: ``.venv/bin/python benchmarks/tac_reference.py --tac-repo DIR [--seeds 0 1 2] [--noun-templates single]
[--semclust-only]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "tac_reference.json"
DATASETS = ("dataset:fashion-mnist:test", "dataset:digits")
PUBLIC_NAME = "CIFAR-10"  # the scripts' dataset switch: K = 10 and the data file names
SEED_PREAMBLE = (
    "import os as _os, random as _random, numpy as _np, torch as _torch\n"
    "_SEED = int(_os.environ['TAC_SEED'])\n"
    "_random.seed(_SEED); _np.random.seed(_SEED); _torch.manual_seed(_SEED)\n"
)


def export_repo(repo: Path, dest: Path) -> None:
    """Copy the public code's Python files (a work tree, or HEAD of a bare git directory) into ``dest``.

    Only ``*.py`` files are needed (the embeddings are ours); a snapshot may lack its large data
    files, so they are not read.
    """
    dest.mkdir(parents=True)
    if (repo / "train_head.py").exists():
        for path in repo.glob("*.py"):
            shutil.copy(path, dest / path.name)
    else:
        git = ["git", "--git-dir", str(repo)]
        names = subprocess.run([*git, "ls-tree", "--name-only", "HEAD"], check=True, capture_output=True, text=True)
        for name in names.stdout.split():
            if name.endswith(".py"):
                blob = subprocess.run([*git, "show", f"HEAD:{name}"], check=True, capture_output=True)
                (dest / name).write_bytes(blob.stdout)
    if not (dest / "train_head.py").exists():
        raise SystemExit(f"{repo} does not hold TAC's public code (no train_head.py)")


def _patch(path: Path, replacements: list[tuple[str, str]], append: str = "", preamble: bool = False) -> None:
    text = path.read_text()
    for old, new in replacements:
        if old not in text:
            raise SystemExit(f"cannot patch {path.name}: {old!r} not found (another version of the public code?)")
        text = text.replace(old, new)
    if preamble:
        text = SEED_PREAMBLE + text
    path.write_text(text + append)


def patch_for_cpu(root: Path, k_prime: int, dim: int, seed: int) -> None:
    """The changes listed in the module docstring, each checked to apply."""
    for path in root.glob("*.py"):
        text = path.read_text().replace(".cuda()", "").replace(".half()", ".float()")
        text = text.replace("dtype=torch.float16", "dtype=torch.float32").replace("gpu=True", "gpu=False")
        text = text.replace("faiss.index_cpu_to_all_gpus(index)", "index")
        path.write_text(text)
    no_metric = ("from eval_utils import cluster_metric", "cluster_metric = lambda label, pred: None")
    timm_init = ("from timm.models.layers import trunc_normal_", "from torch.nn.init import trunc_normal_")
    _patch(root / "models.py", [("import clip\n", ""), timm_init])
    _patch(root / "data_utils.py", [
        ("import torchvision\n", ""),
        ("from torchvision.transforms import InterpolationMode\n", ""),
        ("from torchvision.datasets import CIFAR10, CIFAR100, STL10, ImageFolder\n", ""),
        ("BICUBIC = InterpolationMode.BICUBIC", "BICUBIC = None"),
    ])  # fmt: skip
    _patch(root / "filter_nouns.py", [
        ("cluster_num = 167", f"cluster_num = {k_prime}"),
        ("(cluster_num, 512)", f"(cluster_num, {dim})"),
        ("niter=300, nredo=10)", f"niter=300, nredo=10, seed={seed})"),
    ], preamble=True)  # fmt: skip
    _patch(root / "concat_kmeans.py", [no_metric, ("niter=300, nredo=20)", f"niter=300, nredo=20, seed={seed})")],
           append='\n    np.save("preds_notrain.npy", preds)\n', preamble=True)  # fmt: skip
    _patch(root / "train_head.py", [no_metric, ("ClusterHead(in_dim=512,", f"ClusterHead(in_dim={dim},")],
           append='\n    np.save("preds_train.npy", preds)\n', preamble=True)  # fmt: skip


def run_public(repo: Path, joint: np.ndarray, nouns: np.ndarray, labels: np.ndarray, k_prime: int,
               seed: int, threads: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Predictions of the public no-train and trained TAC on these embeddings."""
    with tempfile.TemporaryDirectory(prefix="tac-public-") as tmp:
        root = Path(tmp) / "tac"
        export_repo(repo, root)
        patch_for_cpu(root, k_prime, joint.shape[1], seed)
        data = root / "data"
        data.mkdir(exist_ok=True)
        np.save(data / "nouns_embedding_ensemble.npy", nouns.astype(np.float32))
        for split in ("train", "test"):  # one set: clustered and scored, as semclust's runs
            np.save(data / f"{PUBLIC_NAME}_image_embedding_{split}.npy", joint.astype(np.float32))
        np.savetxt(data / f"{PUBLIC_NAME}_labels_test.txt", labels)
        env = {**os.environ, "TAC_SEED": str(seed), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        for script in ("filter_nouns.py", "filter_nouns.py", "retrieve_text.py", "concat_kmeans.py",
                       "train_head.py", "train_head.py"):  # fmt: skip
            done = subprocess.run([sys.executable, script], cwd=root, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"public {script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return {"tac-notrain-public": np.load(root / "preds_notrain.npy"),
                "tac-public": np.load(root / "preds_train.npy")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tac-repo", type=Path, required=True, help="local checkout of XLearning-SCU/2024-ICML-TAC")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--encoder", default="offline")
    parser.add_argument(
        "--noun-templates", default="single",
        help="noun prompt templates for both sides: single, or tac (TAC's seven; ~7x the embedding time)",
    )  # fmt: skip
    parser.add_argument("--vocabulary", default="wordnet-all", help="noun vocabulary of both sides (TAC: all nouns)")
    parser.add_argument("--semclust-only", action="store_true", help="recompute semclust's side, keep the public runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    from semclust.methods.tac import TAC
    from semclust.methods.tac_notrain import TACNoTrain
    from semclust.metrics import evaluate
    from semclust.ops.tac_text import default_n_centers
    from semclust.workflow import embed, feature_set_from_store

    torch.set_num_threads(args.threads)
    # A rerun keeps what is recorded and skips the (dataset, seed) pairs already done.
    records: list[dict[str, Any]] = json.loads(args.out.read_text()) if args.out.exists() else []
    public_done = {(r["dataset"], r["seed"]) for r in records if r["method"].endswith("-public")}
    if args.semclust_only:  # drop semclust's records of the pairs asked for; they are recomputed
        asked = {(d.removeprefix("dataset:"), seed) for d in args.datasets for seed in args.seeds}
        records = [r for r in records if r["method"].endswith("-public") or (r["dataset"], r["seed"]) not in asked]
    done = {(r["dataset"], r["seed"]) for r in records if not r["method"].endswith("-public")}
    for source in args.datasets:
        dataset = source.removeprefix("dataset:")
        store = embed(source, encoder=args.encoder).store
        features = feature_set_from_store(store, noun_templates=args.noun_templates, vocabulary=args.vocabulary)
        _, nouns = features.noun_vocabulary()
        joint, labels = np.asarray(features.joint, dtype=np.float32), np.asarray(features.labels)
        k = int(labels.max()) + 1
        if k != 10:
            raise SystemExit(f"{dataset} has {k} classes; the public scripts' CIFAR-10 switch fixes K = 10")
        k_prime = default_n_centers(len(joint), k)
        base = {"dataset": dataset, "encoder": args.encoder, "noun_templates": args.noun_templates,
                "image_view": "joint", "k_prime": k_prime, "n": len(joint), "vocabulary": args.vocabulary,
                "n_nouns": len(nouns)}  # fmt: skip
        for seed in args.seeds:
            if (dataset, seed) in done:
                continue
            if args.semclust_only and (dataset, seed) not in public_done:
                continue
            if not args.semclust_only:
                start = time.perf_counter()
                public = run_public(args.tac_repo, joint, nouns, labels, k_prime, seed, args.threads)
                public_wall = time.perf_counter() - start
                wall = {"wall_s": round(public_wall, 2), "wall_is": "all public scripts together"}
                for method, pred in public.items():
                    records.append({**base, "method": method, "seed": seed, **evaluate(labels, pred), **wall})
            for method, estimator in (("tac-notrain", TACNoTrain(n_clusters=k, random_state=seed)),
                                      ("tac", TAC(n_clusters=k, random_state=seed))):  # fmt: skip
                start = time.perf_counter()
                estimator.fit(joint, nouns)
                records.append({**base, "method": method, "seed": seed, **evaluate(labels, estimator.labels_),
                                "wall_s": round(time.perf_counter() - start, 2)})  # fmt: skip
            for r in [r for r in records if r["dataset"] == dataset and r["seed"] == seed]:
                print(f"{dataset} {r['method']:18s} seed {seed}: acc {r['acc']:.4f} nmi {r['nmi']:.4f} "
                      f"ari {r['ari']:.4f} ({r['wall_s']:.0f}s)", flush=True)  # fmt: skip
            write_records(args.out, records)
    for dataset in sorted({r["dataset"] for r in records}):
        means = {m: float(np.mean([r["acc"] for r in records if r["dataset"] == dataset and r["method"] == m]))
                 for m in ("tac-public", "tac", "tac-notrain-public", "tac-notrain")}  # fmt: skip
        print(dataset, {m: round(v, 4) for m, v in means.items()},
              f"tac gap {100 * (means['tac'] - means['tac-public']):+.1f} points, "
              f"no-train gap {100 * (means['tac-notrain'] - means['tac-notrain-public']):+.1f} points")  # fmt: skip


if __name__ == "__main__":
    main()
