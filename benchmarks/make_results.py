"""Generate ``benchmarks/RESULTS.md`` from every ``benchmarks/results/*.json`` file.

Run: ``.venv/bin/python benchmarks/make_results.py``
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from common import mean_std  # noqa: E402
from offline_defaults import choose_defaults  # noqa: E402


def load(name: str) -> list[dict]:
    path = HERE / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else []


def foundation_section(records: list[dict]) -> list[str]:
    if not records:
        return []
    lines = ["## Foundation: offline encoder and baselines (`benchmarks/foundation.py`)", ""]
    for r in (r for r in records if r["method"] == "embed"):
        lines.append(
            f"Embedding {r['dataset']} ({r['n']} images) with `{r['encoder']}` {r['encoder_options']}: "
            f"{r['images_per_s']:.1f} images/s, {r['wall_s']:.1f} s for the whole pipeline "
            "(decode, resize, forward, bridge, write), 2 CPU cores."
        )
    lines += ["", "| method | dataset | seeds | ACC | NMI | ARI | wall s (mean) |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r["method"] != "embed":
            groups[(r["method"], r["dataset"])].append(r)
    for (method, dataset), rows in groups.items():
        cells = [mean_std([r[m] for r in rows]) for m in ("acc", "nmi", "ari")]
        wall = np.mean([r["wall_s"] for r in rows])
        lines.append(f"| {method} | {dataset} | {len(rows)} | {' | '.join(cells)} | {wall:.2f} |")
    return lines + [""]


def defaults_section(records: list[dict]) -> list[str]:
    if not records:
        return []
    choice = choose_defaults(records)
    lines = [
        "## Offline encoder defaults, chosen on training data (`benchmarks/offline_defaults.py`)",
        "",
        "Fashion-MNIST *train* (seeded 2,000-image subset) and digits; the test split is never used.",
        f"Chosen: image size **{choice['image_size']}**, ConSE top-T **{choice['top_t']}**, "
        f"class template **{choice['class_template']!r}** (rule in the script's docstring).",
        "",
        "Per image size (best top-T/template for the joint view):",
        "",
        "| image size | dataset | images/s | kNN-10 purity visual | kNN-10 purity joint (best) | "
        "zero-shot ACC (best) | k-means ACC visual |",
        "|---|---|---|---|---|---|---|",
    ]
    by_size: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for r in records:
        by_size[(r["image_size"], r["dataset"])].append(r)
    for (size, dataset), rows in sorted(by_size.items()):
        lines.append(
            f"| {size} | {dataset} | {rows[0]['images_per_s']:.0f} | {rows[0]['knn10_purity_visual']:.3f} | "
            f"{max(r['knn10_purity_joint'] for r in rows):.3f} | {max(r['zeroshot_acc'] for r in rows):.3f} | "
            f"{rows[0]['kmeans_visual_acc']:.3f} |"
        )
    lines += [
        "",
        f"Bridge settings at size {choice['image_size']}:",
        "",
        "| top-T | class template | dataset | kNN-10 purity joint | zero-shot ACC | k-means ACC joint |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["image_size"] == choice["image_size"]:
            lines.append(
                f"| {r['top_t']} | `{r['class_template']}` | {r['dataset']} | {r['knn10_purity_joint']:.3f} | "
                f"{r['zeroshot_acc']:.3f} | {r['acc']:.3f} |"
            )
    return lines + [""]


def bridge_section(records: list[dict]) -> list[str]:
    if not records:
        return []
    from bridge import choose  # noqa: PLC0415 - only needed when the results exist

    variants = list(dict.fromkeys(r["variant"] for r in records))
    best, score = choose(records, [r["options"] for r in records if r["dataset"] == records[0]["dataset"]])
    lines = [
        "## Offline bridge variants, chosen on training data (`benchmarks/bridge.py`)",
        "",
        "Fashion-MNIST *train* (seeded 2,000-image subset) and digits, image size 128. Rule (fixed before "
        "measuring): highest mean of (joint kNN-10 purity + zero-shot ACC) / 2 over both sets.",
        f"Chosen: **{best}** (score {score:.4f}); it is the default `offline` encoder.",
        "",
        "| variant | dataset | kNN-10 purity visual | kNN-10 purity joint | zero-shot ACC | k-means ACC joint |",
        "|---|---|---|---|---|---|",
    ]
    for variant in variants:
        for r in (r for r in records if r["variant"] == variant):
            lines.append(
                f"| {variant} | {r['dataset']} | {r['knn10_purity_visual']:.3f} | {r['knn10_purity_joint']:.3f} | "
                f"{r['zeroshot_acc']:.3f} | {r['acc']:.3f} |"
            )
    return lines + [""]


def language_section(records: list[dict]) -> list[str]:
    if not records:
        return []
    lines = ["## Language-assisted clustering (`benchmarks/language.py`)", ""]
    for encoder in dict.fromkeys(r["encoder"] for r in records):
        rows_e = [r for r in records if r["encoder"] == encoder]
        options = next(r["encoder_options"] for r in rows_e)
        lines += [f"Encoder `{encoder}` {options}.", ""]
        for dataset in dict.fromkeys(r["dataset"] for r in rows_e):
            rows_d = [r for r in rows_e if r["dataset"] == dataset]
            purity = {r["method"]: r["purity"] for r in rows_d if r["method"].startswith("knn10-purity")}
            lines += [
                f"### {dataset}",
                "",
                "kNN-10 purity: " + ", ".join(f"{m.removeprefix('knn10-purity-')} {v:.3f}" for m, v in purity.items()),
                "",
                "| method | seeds | ACC | NMI | ARI | wall s (mean) | LAIC neighbour purity before → after (kept) |",
                "|---|---|---|---|---|---|---|",
            ]
            methods = [m for m in dict.fromkeys(r["method"] for r in rows_d) if not m.startswith("knn10-purity")]
            for method in methods:
                rows = [r for r in rows_d if r["method"] == method]
                cells = [mean_std([r[m] for r in rows]) for m in ("acc", "nmi", "ari")]
                np_rows = [r["neighbour_purity"] for r in rows if r.get("neighbour_purity")]
                purity_cell = (
                    f"{np.mean([p['before'] for p in np_rows]):.3f} → {np.mean([p['after'] for p in np_rows]):.3f} "
                    f"({np.mean([p['kept_fraction'] for p in np_rows]):.2f})"
                    if np_rows
                    else ""
                )
                wall = np.mean([r["wall_s"] for r in rows])
                lines.append(f"| {method} | {len(rows)} | {' | '.join(cells)} | {wall:.1f} | {purity_cell} |")
            names = next((r.get("names") for r in rows_d if r["method"] == "laic" and r.get("names")), None)
            if names:
                lines += ["", "Cluster names from `laic` (seed 0):", ""]
                lines += [f"- cluster {k}: {', '.join(n)}" for k, n in enumerate(names)]
            lines.append("")
    return lines


def asd_section(records: list[dict]) -> list[str]:
    if not records:
        return []
    lines = [
        "## ASD: clustering by cold-starting FixMatch (`benchmarks/asd.py`)",
        "",
        "Fashion-MNIST: learning on (a subset of) train, scoring on test. Settings per record are in "
        "`benchmarks/results/asd.json`; `kmeans-offline` is fitted on the test features themselves.",
        "",
        "| method | seeds | ACC | NMI | ARI | wall s (mean) | settings |",
        "|---|---|---|---|---|---|---|",
    ]
    skip = {"method", "dataset", "seed", "acc", "nmi", "ari", "wall_s", "n", "k"}
    for method in dict.fromkeys(r["method"] for r in records):
        rows = [r for r in records if r["method"] == method]
        cells = [mean_std([r[m] for r in rows]) for m in ("acc", "nmi", "ari")]
        settings = {k: v for k, v in rows[0].items() if k not in skip and not isinstance(v, (list, dict))}
        wall = np.mean([r["wall_s"] for r in rows])
        lines.append(f"| {method} | {len(rows)} | {' | '.join(cells)} | {wall:.1f} | {settings} |")
    return lines + [""]


def main() -> None:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/make_results.py` from `benchmarks/results/*.json`; do not edit by hand.",
        "Machine: 2 CPU cores, no GPU, unless a section says otherwise. ± is the standard deviation over seeds.",
        "",
    ]
    lines += foundation_section(load("foundation"))
    lines += language_section(load("language"))
    lines += asd_section(load("asd"))
    lines += bridge_section(load("bridge"))
    lines += defaults_section(load("offline_defaults"))
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
