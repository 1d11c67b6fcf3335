"""One synchronous step of a 1-PS, 2-worker cluster in this process (run by test_cluster.py in a
child process, so that its servers end with it). Both workers get the same batch; the variables
after the step are written to the .npz given as argv[1]."""

import os
import sys
import threading

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from resnet_tf1 import cluster, run_config, train_lib  # noqa: E402

tf1 = tf.compat.v1


def main(out, ports, model_dir):
    data = np.load(out + ".in.npz")
    hosts = ["127.0.0.1:%s" % p for p in ports.split(",")]
    configs = [cluster.ClusterConfig(job, i, tuple(hosts[:1]), tuple(hosts[1:]), "flags")
               for job, i in (("ps", 0), ("worker", 0), ("worker", 1))]
    servers = [cluster.start_server(c) for c in configs]
    params = run_config.RunParams(model_dir=model_dir, dataset="cifar10", depth=20, batch_size=4,
                                  learning_rate=0.5, lr_boundaries=(), device="/cpu:0",
                                  max_steps=1)
    results, errors = {}, []

    def worker(index):
        try:
            job = cluster.Job(configs[1 + index], timeout_secs=120)
            graph = tf.Graph()
            with graph.as_default(), tf1.device(job.device_setter()):
                tf1.set_random_seed(7)
                step = tf1.train.get_or_create_global_step()
                train_op, _ = train_lib.build_train_op(
                    params, tf.constant(data["images"]), tf.constant(data["labels"]), step,
                    job=job)
                variables = {v.op.name: v for v in tf1.global_variables()
                             if "Momentum" not in v.op.name}
                hooks = [tf1.train.StopAtStepHook(last_step=1)] + job.hooks()
                with train_lib._session(params, tf1.train.Scaffold(), hooks, job,
                                        servers[1 + index]) as sess:
                    while not sess.should_stop():
                        sess.run(train_op)
                    if job.is_chief:
                        results.update(sess.run_step_fn(
                            lambda step_context: step_context.session.run(variables)))
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors or any(t.is_alive() for t in threads):
        print("failed: %r" % (errors or "timeout"), file=sys.stderr)
        os._exit(1)
    np.savez(out, **results)
    sys.stdout.flush()
    os._exit(0)  # the in-process servers cannot be stopped otherwise


if __name__ == "__main__":
    main(*sys.argv[1:])
