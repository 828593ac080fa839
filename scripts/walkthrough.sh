#!/usr/bin/env bash
# A new user's day, run end to end: a folder in, clusters with names, a report, predictions,
# an export, then semi-supervised training on a few labelled images and predictions with it.
# Writes the commands and what they printed as markdown on stdout:
#     bash scripts/walkthrough.sh > docs/walkthrough.md
# Needs `make install` (the emoji font and Unicode data come from Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$PWD/.venv/bin/python}
WORK=${WORK:-$(mktemp -d /tmp/semclust-walkthrough.XXXXXX)}
export SEMCLUST_CACHE=${SEMCLUST_CACHE:-$WORK/cache}
mkdir -p "$WORK" && cd "$WORK"
ROOT=$OLDPWD

run() {  # print a command and its output (stdout and stderr) as a markdown block
  echo '```console'
  local shown="$*"
  shown=${shown//"$PY -m semclust"/semclust}
  shown=${shown//"$PY -"/python -}
  echo "\$ $shown"
  "$@" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' | grep -v '^\s*$' | tail -n 40
  echo '```'
  echo
}

cat <<'TEXT'
# Walkthrough: a folder of images, from a fresh clone

Every command below was run by `scripts/walkthrough.sh` (after `make install`), which also
wrote this page; the output is what the commands printed (progress bars trimmed). The images
are Noto colour emoji of three Unicode subgroups (mammals, fruit, drinks), saved as PNG files
in nested folders as a user's folder would be, plus one file that is not an image.

TEXT
if [ -d "$SEMCLUST_CACHE" ] && [ -n "$(ls -A "$SEMCLUST_CACHE" 2>/dev/null)" ]; then
  echo "This run reused a warm cache (\$SEMCLUST_CACHE held $(find "$SEMCLUST_CACHE" -type f | wc -l) files: ONNX exports, noun embeddings, features), so no model was exported and the noun vocabulary bar says \"cached\"."
else
  echo "This run started from an empty cache (\$SEMCLUST_CACHE): the encoder's ONNX exports are built once (the first command below), then cached."
fi
cat <<'TEXT'

## 1. A folder of images
TEXT
run "$PY" - <<'PYTHON'
from pathlib import Path
import semclust
source = semclust.open_source("dataset:emoji:food-animals")
keep = {"animal-mammal": "animals/mammals", "food-fruit": "food/fruit", "drink": "food/drinks"}
names = source.class_names
counts = {}
for i, label in enumerate(source.labels):
    group = names[label]
    if group not in keep:
        continue
    n = counts[group] = counts.get(group, 0) + 1
    split = "labelled" if n <= 4 else ("test" if n <= 8 else "my_images")
    folder = Path(split) / (group if split != "my_images" else keep[group])
    folder.mkdir(parents=True, exist_ok=True)
    source.load(i).save(folder / f"{source.ids[i].split('/')[-1]}.png")
Path("my_images/notes.png").write_text("not an image")
Path("new_images").mkdir(exist_ok=True)
for path in sorted(Path("test").rglob("*.png"))[::4]:
    (Path("new_images") / path.name).write_bytes(path.read_bytes())
for split in ("my_images", "labelled", "test", "new_images"):
    print(split, sum(1 for p in Path(split).rglob("*") if p.is_file()), "files")
PYTHON

echo "## 2. Cluster it, name the clusters, write a report"
run "$PY" -m semclust cluster my_images --k 3 --out runs/emoji --report
echo "## 3. New images into those clusters"
run "$PY" -m semclust predict runs/emoji new_images --out runs/emoji-new
run head -n 5 runs/emoji-new/assignments.csv
echo "## 4. One folder per cluster"
run "$PY" -m semclust export runs/emoji --to exported
run head -n 4 exported/manifest.csv
cat <<'TEXT'
## 5. Semi-supervised: four labelled images per class, the folder as unlabelled data
`labelled/` has one subfolder per class (four images each); the clustered folder is the
unlabelled data and `test/` (four per class, labelled the same way) scores the result.
A short run uses `--ema-warmup`: the evaluated model is an EMA of the weights, and FixMatch's
constant decay 0.999 (the default, as the paper) leaves it near its initial weights for the
first few hundred steps.
TEXT
run "$PY" -m semclust ssl fixmatch --labelled labelled --unlabelled my_images --test test --steps 300 --ema-warmup --out runs/ssl
run "$PY" -m semclust predict runs/ssl new_images --out runs/ssl-new
run head -n 5 runs/ssl-new/assignments.csv
echo "The files of this walkthrough are in \`$WORK\`."
