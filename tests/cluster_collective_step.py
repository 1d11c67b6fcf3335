"""One collective all-reduce step of worker `index` of a 2-worker cluster (test_cluster.py starts
both workers, each in its own process: a MultiWorkerMirroredStrategy is one per process). Both
get the same batch; the chief writes the variables after the step to the .npz given as argv[1]."""

import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from resnet_tf1 import cluster, run_config, train_lib  # noqa: E402

tf1 = tf.compat.v1


def main(out, ports, model_dir, index):
    data = np.load(out + ".in.npz")
    hosts = tuple("127.0.0.1:%s" % p for p in ports.split(","))
    job = cluster.Job(cluster.ClusterConfig("worker", int(index), (), hosts, "flags"),
                      "collective_all_reduce", timeout_secs=120)
    params = run_config.RunParams(model_dir=model_dir, dataset="cifar10", depth=20, batch_size=4,
                                  learning_rate=0.5, lr_boundaries=(), device="/cpu:0",
                                  max_steps=1)
    graph = tf.Graph()
    with graph.as_default():
        job.build_strategy(0)
    server = cluster.start_server(job.config, job.variable_update, job.server_config())
    with graph.as_default(), job.scope():
        tf1.set_random_seed(7)
        step = tf1.train.get_or_create_global_step()
        job.global_step_read(step)
        train_op, _ = train_lib.build_train_op(
            params, tf.constant(data["images"]), tf.constant(data["labels"]), step, job=job)
        variables = {v.op.name: v for v in tf1.global_variables() if "Momentum" not in v.op.name}
        hooks = [tf1.train.StopAtStepHook(last_step=1)]
        with train_lib._session(params, tf1.train.Scaffold(), hooks, job, server) as sess:
            while not sess.should_stop():
                sess.run(train_op)
            results = sess.run_step_fn(lambda step_context: step_context.session.run(variables))
    if job.is_chief:
        np.savez(out, **results)
    else:  # this worker's own copy: the same values
        np.savez(out + ".worker1", **results)
    sys.stdout.flush()
    os._exit(0)  # the in-process server cannot be stopped otherwise


if __name__ == "__main__":
    main(*sys.argv[1:])
