#!/bin/bash
# Issue 34: int8 (ONNX Runtime, minmax and percentile calibration) against float32 on the whole
# test set of four trained models (not part of the suite). Each MODEL is a training run whose
# BN statistics were recomputed over the training augmentation (the default since issue 33).
#   tests/drills/int8_accuracy.sh OUT RUN_DIR...
cd "$(dirname "$0")/../.."; . .venv/bin/activate
OUT=$1; shift
for R in "$@"; do
  name=$(basename $R)
  echo "== $R float32: $(python scripts/evaluate.py --flagfile=$R/flags.txt --model_dir=$R 2>&1 | grep '^step' | cut -c1-46)"
  for m in minmax percentile; do
    D=$OUT/${name}_int8_$m; rm -rf $D
    python scripts/export.py --model_dir=$R --export_dir=$D --format=onnx --quantize=int8 \
        --calibration_method=$m --min_agreement=0.5 2>&1 | grep "^int8\|error:"
    echo "   int8 $m: $(python scripts/evaluate.py --flagfile=$R/flags.txt --model_dir=$R --export_dir=$D 2>&1 | grep '^step' | cut -c1-46)"
  done
done
