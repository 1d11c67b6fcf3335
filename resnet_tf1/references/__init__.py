"""Reference implementations: the peers that ported checkpoints are checked against.

The peers' numbers, not ours, are the reference. `convert_checkpoint.py --verify`, the benchmark
and the tests all take their peer networks from here, one builder each:

    slim         TF-slim's own `nets.resnet_v1` (needs tf-keras on TF 2.16+)
    keras        tf-keras' own `applications.ResNet50/101/152`, and the 2016 Keras ResNet50 of
                 seed article 003 rebuilt with tf-keras layers
    official_r1  `official/r1/resnet/resnet_model.py` re-created on `tf.compat.v1.layers`, so its
                 `conv2d_N` names come from TF's own layer numbering
    caffe        a numpy forward pass of the MSRA deploy net with Caffe's semantics

None of them shares code with the model or the porting name maps.
"""
