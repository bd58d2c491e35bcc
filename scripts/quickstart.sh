#!/usr/bin/env bash
# Set up and run the main job on the embedded default (2-D gaussian8, no download):
# train the toy DDPM, sample 30,000 points, evaluate the discrete VLB.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
WORKDIR=${WORKDIR:-runs/toy}
for mode in train sample eval; do
  python3 main.py --config=configs/toy.py --workdir="$WORKDIR" --mode=$mode "$@"
done
echo "samples: $WORKDIR/samples/ddpm_100_0.npz (plot: .png), bound: $WORKDIR/eval/metrics.json"
