"""Embedding speed of the offline encoder: every figure measured side by side in one run.

Images: the first ``--n`` Fashion-MNIST test images; texts: the first ``--texts`` distinct WordNet
noun names in the vocabulary's template ("a photo of a {}."). For each image size and thread
count (interleaved, ``--repeat`` times, fastest kept: the least disturbed figure on a shared
machine):

- ``torch-eager``: the PyTorch tower's bare forward on prepared batches;
- ``torch-channels-last``: the same with channels_last weights and inputs;
- ``ort-session``: the ONNX Runtime session's bare ``run`` on the same batches;
- ``embed-torch`` / ``embed-onnx``: the whole ``semclust embed`` pipeline (decode, resize,
  forward, bridge, write the store) with each backend, towers loaded before timing;
- ``compute-limit``: the tower's FLOPs (PyTorch's flop counter) over the cores' measured
  float32 matmul rate at that thread count: what no implementation can beat.

Texts: ``minilm-legacy`` (the text tower before this change: batches of 256 sorted by
character length, PyTorch), ``minilm-torch`` and ``minilm-onnx`` (token-length buckets).
``prompt-step-padded`` / ``prompt-step-packed``: one LAIC prompt-training step with the K
prompts padded to the longest, and packed without padding (what LAIC runs).
``--demo`` also runs a cold ``semclust demo`` (empty cache) in a subprocess and records its
phases from run.json.

Run: ``.venv/bin/python benchmarks/speed.py [--demo]`` -> ``benchmarks/results/speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from common import write_records  # noqa: E402

DATASET = "fashion-mnist-test"


def best_of(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_gflops(threads: int, size: int = 1024, repeat: int = 5) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    seconds = best_of(lambda: a @ b, repeat)
    return 2 * size**3 / seconds / 1e9


def tower_flops(image_size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from semclust.encoders.efficientnet import EfficientNetLiteTower

    tower = EfficientNetLiteTower(image_size=image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        tower(torch.zeros(1, 3, image_size, image_size))
    return float(counter.get_total_flops())


def image_records(n: int, sizes: list[int], thread_counts: list[int], repeat: int) -> list[dict[str, Any]]:
    from semclust.data.base import ArraySource
    from semclust.data.fashion_mnist import FashionMNISTSource

    full = FashionMNISTSource("test")
    gray = np.stack([np.asarray(full.load(i).convert("L")) for i in range(n)])
    source = ArraySource(gray, full.labels[:n], name=f"{DATASET}-{n}")
    records: list[dict[str, Any]] = []
    for size in sizes:
        flops = tower_flops(size)
        for threads in thread_counts:
            timings = time_image_paths(source, size, threads, repeat)
            gflops = matmul_gflops(threads)
            rates = {name: n / min(values) for name, values in timings.items()}
            limit = gflops * 1e9 / flops
            for name, rate in rates.items():
                records.append(
                    {
                        "method": name,
                        "dataset": source.name,
                        "seed": 0,
                        "n": n,
                        "image_size": size,
                        "threads": threads,
                        "images_per_s": round(rate, 1),
                        "wall_s": round(min(timings[name]), 3),
                        "vs_ort_session": round(rate / rates["ort-session"], 3),
                        "vs_torch_eager": round(rate / rates["torch-eager"], 3),
                        "vs_compute_limit": round(rate / limit, 3),
                    }
                )
            records.append(
                {
                    "method": "compute-limit",
                    "dataset": source.name,
                    "seed": 0,
                    "n": n,
                    "image_size": size,
                    "threads": threads,
                    "images_per_s": round(limit, 1),
                    "wall_s": round(n / limit, 3),
                    "gflop_per_image": round(flops / 1e9, 4),
                    "matmul_gflop_per_s": round(gflops, 1),
                }
            )
            print(f"{size}px {threads} thread(s): " + ", ".join(f"{k} {v:.0f}/s" for k, v in rates.items()))
    return records


def time_image_paths(source: Any, size: int, threads: int, repeat: int) -> dict[str, list[float]]:
    """Seconds for all of ``source`` by each path, ``repeat`` times, interleaved."""
    from semclust import workflow
    from semclust.encoders.efficientnet import EfficientNetLiteTower, OnnxVisualTower
    from semclust.encoders.offline import OfflineEncoder

    torch.set_num_threads(threads)
    encoders = {b: OfflineEncoder(image_size=size, backend=b, threads=threads) for b in ("torch", "onnx")}
    for encoder in encoders.values():
        encoder.image_views([source.load(0)])  # load towers, bridge and class texts before timing
    bs = encoders["onnx"].batch_size
    images = [source.load(i) for i in range(len(source))]
    batches = [encoders["onnx"].prepare_images(images[i : i + bs]) for i in range(0, len(images), bs)]
    eager = encoders["torch"].visual_tower
    assert isinstance(eager, EfficientNetLiteTower)
    channels_last = EfficientNetLiteTower(image_size=size).to(memory_format=torch.channels_last)
    session = encoders["onnx"].visual_tower
    assert isinstance(session, OnnxVisualTower)

    def forward_eager() -> None:
        for batch in batches:
            eager.run(batch)

    def forward_channels_last() -> None:
        with torch.inference_mode():
            for batch in batches:
                channels_last(torch.from_numpy(batch).contiguous(memory_format=torch.channels_last))

    def forward_ort() -> None:
        for batch in batches:
            session.run(batch)

    def pipeline(backend: str) -> Any:
        def run() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                workflow.embed(source, encoder=encoders[backend], out=Path(tmp) / "store")

        return run

    paths = {
        "torch-eager": forward_eager,
        "torch-channels-last": forward_channels_last,
        "ort-session": forward_ort,
        "embed-torch": pipeline("torch"),
        "embed-onnx": pipeline("onnx"),
    }
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):  # interleaved: machine noise hits every figure alike
        for name, fn in paths.items():
            timings[name].append(best_of(fn, 1))
    return timings


def batch_size_records(n: int, size: int, threads: int, batch_sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    """The bare ONNX Runtime session at several batch sizes (what the default batch size rests on)."""
    from semclust.data.fashion_mnist import FashionMNISTSource
    from semclust.encoders.offline import OfflineEncoder

    source = FashionMNISTSource("test")
    encoder = OfflineEncoder(image_size=size, backend="onnx", threads=threads)
    pixels = encoder.prepare_images([source.load(i) for i in range(n)])
    tower = encoder.visual_tower
    timings: dict[int, list[float]] = {bs: [] for bs in batch_sizes}
    for _ in range(repeat):
        for bs in batch_sizes:
            timings[bs].append(best_of(lambda: [tower.run(pixels[i : i + bs]) for i in range(0, n, bs)], 1))  # noqa: B023
    records = []
    for bs, values in timings.items():
        records.append(
            {
                "method": f"ort-session-batch-{bs}",
                "dataset": f"{DATASET}-{n}",
                "seed": 0,
                "n": n,
                "batch_size": bs,
                "image_size": size,
                "threads": threads,
                "images_per_s": round(n / min(values), 1),
                "wall_s": round(min(values), 3),
            }
        )
    print("batch sizes:", {r["batch_size"]: r["images_per_s"] for r in records})
    return records


def legacy_encode(tower: Any, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """The text tower as it was: batches of 256 ordered by character length, padded per batch."""
    out = np.zeros((len(texts), tower.dim), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            tokens = tower.tokenizer([texts[i] for i in idx], padding=True, truncation=True, return_tensors="pt")
            hidden = tower.model(**tokens).last_hidden_state
            out[idx] = tower.pool(hidden, tokens["attention_mask"]).numpy()
    return out


def time_text_paths(texts: list[str], threads: int, repeat: int) -> dict[str, list[float]]:
    from semclust.encoders.minilm import MiniLMTextTower

    torch.set_num_threads(threads)
    towers = {b: MiniLMTextTower(backend=b, threads=threads) for b in ("torch", "onnx")}
    for tower in towers.values():
        tower.encode(texts[:8])
    towers["torch"].model  # noqa: B018 - load before timing
    paths = {
        "minilm-legacy": lambda: legacy_encode(towers["torch"], texts),
        "minilm-torch": lambda: towers["torch"].encode(texts),
        "minilm-onnx": lambda: towers["onnx"].encode(texts),
    }
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, fn in paths.items():
            timings[name].append(best_of(fn, 1))
    return timings


def text_flops_per_text(texts: list[str]) -> float:
    """Mean FLOPs of one text's MiniLM forward at its own token length (no padding counted)."""
    from collections import Counter

    from torch.utils.flop_counter import FlopCounterMode

    from semclust.encoders.minilm import MiniLMTextTower

    tower = MiniLMTextTower(backend="torch")
    lengths = Counter(len(ids) for ids in tower.tokenizer(texts, truncation=True)["input_ids"])
    total = 0.0
    for length, count in lengths.items():
        ids = torch.full((1, length), 1037)
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            tower.model(input_ids=ids, attention_mask=torch.ones_like(ids))
        total += float(counter.get_total_flops()) * count
    return total / len(texts)


def text_records(n_texts: int, thread_counts: list[int], repeat: int) -> list[dict[str, Any]]:
    from semclust.vocab.nouns import wordnet_nouns
    from semclust.vocab.templates import get_templates

    template = get_templates("single")[0]
    names = list(dict.fromkeys(wordnet_nouns().names))[:n_texts]
    texts = [template.format(name) for name in names]
    records = []
    flops = text_flops_per_text(texts)
    for threads in thread_counts:
        timings = time_text_paths(texts, threads, repeat)
        gflops = matmul_gflops(threads)
        limit = gflops * 1e9 / flops
        rates = {name: n_texts / min(values) for name, values in timings.items()}
        for name, rate in rates.items():
            records.append(
                {
                    "method": name,
                    "dataset": f"wordnet-nouns-{n_texts}",
                    "seed": 0,
                    "n": n_texts,
                    "threads": threads,
                    "texts_per_s": round(rate, 1),
                    "wall_s": round(min(timings[name]), 3),
                    "vs_legacy": round(rate / rates["minilm-legacy"], 3),
                    "vs_compute_limit": round(rate / limit, 3),
                }
            )
        records.append(
            {
                "method": "minilm-compute-limit",
                "dataset": f"wordnet-nouns-{n_texts}",
                "seed": 0,
                "n": n_texts,
                "threads": threads,
                "texts_per_s": round(limit, 1),
                "wall_s": round(n_texts / limit, 3),
                "vs_legacy": round(limit / rates["minilm-legacy"], 3),
                "vs_compute_limit": 1.0,
                "gflop_per_text": round(flops / 1e9, 4),
                "matmul_gflop_per_s": round(gflops, 1),
            }
        )
        print(f"texts, {threads} thread(s): " + ", ".join(f"{k} {v:.0f}/s" for k, v in rates.items()))
    return records


def prompt_step_records(thread_counts: list[int], repeat: int, steps: int = 30) -> list[dict[str, Any]]:
    """One LAIC prompt-training step (K=10 prompts forward and back through MiniLM, a batch of
    512 rows): the padded batch against the packed one LAIC uses, at each thread count."""
    from semclust.encoders.minilm import MiniLMTextTower
    from semclust.encoders.prompt import PromptLearner

    names = ["protective covering", "device", "instrumentality", "device", "implement", "bag", "diapsid"]
    names += ["footwear", "container", "garment"]  # the demo's initial center names
    learner = PromptLearner(MiniLMTextTower(backend="torch"), n_ctx=4, init_names=names)
    module = learner.text_module
    rows = torch.nn.functional.normalize(torch.randn(512, 384, generator=torch.Generator().manual_seed(0)), dim=1)

    def run(encode: Any) -> None:
        for _ in range(steps):
            learner.ctx.grad = None
            out = encode(learner.inputs_embeds(), learner.attention_mask, learner.eos_index)
            centers = torch.nn.functional.normalize(out, dim=-1)
            torch.log_softmax(rows @ centers.T * 100, dim=1).mean().backward()

    records = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        paths = {"prompt-step-padded": module.encode_embeds_padded, "prompt-step-packed": module.encode_embeds}
        mask = learner.attention_mask
        tokens = {"prompt-step-padded": mask.numel(), "prompt-step-packed": int(mask.sum())}
        timings: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(repeat):
            for name, encode in paths.items():
                timings[name].append(best_of(lambda: run(encode), 1))  # noqa: B023
        for name, values in timings.items():
            records.append(
                {
                    "method": name,
                    "dataset": "laic-prompts-k10",
                    "seed": 0,
                    "threads": threads,
                    "tokens": tokens[name],
                    "ms_per_step": round(min(values) / steps * 1000, 1),
                    "wall_s": round(min(values), 3),
                }
            )
        shown = ", ".join(f"{r['method']} {r['ms_per_step']} ms" for r in records[-2:])
        print(f"prompt steps, {threads} thread(s): {shown}")
    return records


def demo_record() -> dict[str, Any]:
    """A cold ``semclust demo``: empty cache (features, texts, ONNX exports), installed package."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SEMCLUST_CACHE": str(Path(tmp) / "cache")}
        out = Path(tmp) / "demo"
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "semclust", "demo", "--out", str(out)], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"semclust demo failed:\n{done.stderr[-2000:]}")
        run = json.loads((out / "run.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
    timings = run["timings_s"]
    return {
        "method": "demo-cold",
        "dataset": "fashion-mnist-test",
        "seed": 0,
        "wall_s": round(wall, 1),
        "embed_s": round(timings["features"], 1),
        "images_per_s": run["features"].get("images_per_s"),
        "nouns_s": round(timings.get("nouns", 0.0), 1),
        "fit_s": round(timings["fit"], 1),
        "fit_without_nouns_s": round(timings["fit"] - timings.get("nouns", 0.0), 1),
        "acc": metrics["acc"],
        "nmi": metrics["nmi"],
        "ari": metrics["ari"],
    }


def results_section(records: list[dict[str, Any]]) -> list[str]:
    """The speed section of RESULTS.md (make_results.py calls this)."""
    if not records:
        return []
    lines = [
        "## Embedding speed (`benchmarks/speed.py`)",
        "",
        "All figures of one table were measured side by side in one run (interleaved, fastest of the repeats).",
        "`vs ORT` is the rate over the bare ONNX Runtime session's (1 = no pipeline overhead); `vs eager` over",
        "PyTorch eager's; `vs limit` over the compute limit (the tower's FLOPs at the cores' measured matmul rate).",
        "",
        "| method | image size | threads | images/s | vs ORT | vs eager | vs limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in records if "image_size" in r and "batch_size" not in r):
        if r["method"] == "compute-limit":
            lines.append(
                f"| compute limit ({r['gflop_per_image']} GFLOP/image, {r['matmul_gflop_per_s']} GFLOP/s) "
                f"| {r['image_size']} | {r['threads']} | {r['images_per_s']:.0f} | | | 1 |"
            )
        else:
            lines.append(
                f"| {r['method']} | {r['image_size']} | {r['threads']} | {r['images_per_s']:.0f} | "
                f"{r['vs_ort_session']:.2f} | {r['vs_torch_eager']:.2f} | {r['vs_compute_limit']:.2f} |"
            )
    sweep = [r for r in records if "batch_size" in r]
    if sweep:
        lines += [
            "",
            f"Bare ONNX Runtime session by batch size ({sweep[0]['image_size']} px, {sweep[0]['threads']} threads): "
            + ", ".join(f"{r['batch_size']}: {r['images_per_s']:.0f} images/s" for r in sweep)
            + ".",
        ]
    texts = [r for r in records if "texts_per_s" in r]
    if texts:
        lines += ["", "| text tower | threads | texts/s | vs legacy | vs limit |", "|---|---|---|---|---|"]
        for r in texts:
            method = r["method"]
            if "gflop_per_text" in r:
                method = f"compute limit ({r['gflop_per_text']} GFLOP/text, {r['matmul_gflop_per_s']} GFLOP/s)"
            limit = f"{r['vs_compute_limit']:.2f}" if "vs_compute_limit" in r else ""
            lines.append(f"| {method} | {r['threads']} | {r['texts_per_s']:.0f} | {r['vs_legacy']:.2f} | {limit} |")
    steps = [r for r in records if "ms_per_step" in r]
    if steps:
        lines += ["", "LAIC prompt-training step (K=10 prompts through MiniLM and back, batch 512):", ""]
        lines += ["| step | threads | tokens | ms/step |", "|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['threads']} | {r['tokens']} | {r['ms_per_step']} |" for r in steps]
    for r in (r for r in records if r["method"] == "demo-cold"):
        lines += [
            "",
            f"Cold `semclust demo` (empty cache, installed package): {r['wall_s']:.0f} s in all; embedding "
            f"{r['embed_s']:.0f} s ({r['images_per_s']} images/s), noun vocabulary {r['nouns_s']:.0f} s, "
            f"LAIC fit without the nouns {r['fit_without_nouns_s']:.0f} s; ACC {r['acc']:.4f}, NMI {r['nmi']:.4f}, "
            f"ARI {r['ari']:.4f}.",
        ]
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1024, help="images")
    parser.add_argument("--texts", type=int, default=8192, help="noun texts")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="also time a cold `semclust demo`")
    parser.add_argument("--demo-only", action="store_true", help="only the cold demo, appended to the results")
    parser.add_argument("--out", default=str(HERE / "results" / "speed.json"))
    args = parser.parse_args()
    records: list[dict[str, Any]] = []
    if args.demo_only:
        records = [r for r in json.loads(Path(args.out).read_text()) if r["method"] != "demo-cold"]
    else:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["SEMCLUST_CACHE"] = cache  # exports and class texts of this run only
            records += image_records(args.n, args.sizes, args.threads, args.repeat)
            records += text_records(args.texts, args.threads, args.repeat)
            records += batch_size_records(args.n, args.sizes[0], max(args.threads), [16, 32, 64, 128, 256], args.repeat)
            records += prompt_step_records(args.threads, args.repeat)
    if args.demo or args.demo_only:
        records.append(demo_record())
        print("cold demo:", records[-1])
    write_records(args.out, records)


if __name__ == "__main__":
    main()
