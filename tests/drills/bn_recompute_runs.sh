#!/bin/bash
# Issue 33's measurement, the training half (not part of the suite): ResNet-20, ResNet-56 and
# plain-56 on MNIST-5k and Fashion-5k (scripts/prepare_mnist5k.py --source=mnist5k|fashion_mnist
# into /tmp/mnist5k and /tmp/fashion5k), a short (300 steps) and a long run each (1000 steps on MNIST-5k, 600 on
# Fashion-5k, for the session's time),
# seeds 1 and 2; the paper's recipe shortened (lr 0.1, /10 at 50 % and 75 %), batch 128, no
# end-of-run recompute. MNIST-5k long seed 1 runs through reproduce_table6.py (with plain-20 and
# the watcher: the docs' Fig. 6). Then tests/drills/bn_recompute_compare.py evaluates each run
# with running, recomputed (eval input), recomputed (train input) and batch statistics.
cd "$(dirname "$0")/../.."; . .venv/bin/activate
OUT=${OUT:-/tmp/m33}
train() {  # data name steps seed net
  local R=$OUT/runs/$2_$3_s$4_$5
  [ -e $R/done ] && return
  local b1=$(( $3 / 2 )) b2=$(( $3 * 3 / 4 ))
  python scripts/train.py --flagfile=scripts/flags/cifar10_$5.flags --data_dir=$1 --model_dir=$R \
     --max_steps=$3 --lr_boundaries=$b1,$b2 --seed=$4 --recompute_bn_batches=0 \
     --save_checkpoints_steps=$3 --log_every_n_steps=100 > $R.log 2>&1 && touch $R/done
  echo "$(date +%T) $R: $(grep -c 'error' $R.log) error lines"
}
mkdir -p $OUT/runs
[ -e $OUT/fig6/table6.md ] && [ -e $OUT/fig6/results/cifar10_plain56.json ] || \
python scripts/reproduce_table6.py --data_dir=/tmp/mnist5k --out=$OUT/fig6 --depths=20,56 --plain \
    --max_steps=1000 --extra_flag=--seed=1 --extra_flag=--bn_recompute_input=train > $OUT/fig6.log 2>&1
echo "$(date +%T) fig6 done"
for seed in 1 2; do for net in resnet20 resnet56 plain56; do train /tmp/mnist5k mnist 300 $seed $net; done; done
for seed in 1 2; do for net in resnet20 resnet56 plain56; do train /tmp/fashion5k fashion 300 $seed $net; done; done
for seed in 1 2; do for net in resnet20 resnet56 plain56; do train /tmp/fashion5k fashion 600 $seed $net; done; done
for net in resnet20 resnet56 plain56; do train /tmp/mnist5k mnist 1000 2 $net; done
echo "$(date +%T) RUNS DONE"
