#!/bin/bash
# Issue 33, a first slice of the measurement (not part of the suite; MNIST-5k from scripts/prepare_mnist5k.py in /tmp/mnist5k): ResNet-20 on MNIST-5k, 1000 steps, seeds 1 and 2: running vs recomputed (eval / train input).
cd "$(dirname "$0")/../.."; . .venv/bin/activate
for seed in 1 2; do
  R=/tmp/m33/r20_s$seed; rm -rf $R
  python scripts/train.py --flagfile=scripts/flags/cifar10_resnet20.flags --data_dir=/tmp/mnist5k --model_dir=$R \
     --max_steps=1000 --lr_boundaries=700,900 --batch_size=128 --seed=$seed --recompute_bn_batches=0 \
     --save_checkpoints_steps=1000 --log_every_n_steps=500 2>&1 | grep "step 1000\|error"
  F="--flagfile=$R/flags.txt"
  echo "seed $seed running:"; python scripts/evaluate.py $F --bn_stats=running 2>&1 | grep "^step\|error"
  python scripts/recompute_bn.py $F --bn_recompute_input=eval 2>&1 | grep "^recomputed\|error"
  echo "seed $seed recomputed eval:"; python scripts/evaluate.py $F --bn_stats=recomputed 2>&1 | grep "^step\|error"
  python scripts/recompute_bn.py $F --bn_recompute_input=train 2>&1 | grep "^recomputed\|error"
  echo "seed $seed recomputed train:"; python scripts/evaluate.py $F --bn_stats=recomputed 2>&1 | grep "^step\|error"
done
echo M33 DONE
