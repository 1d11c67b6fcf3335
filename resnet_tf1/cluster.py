"""Multi-worker training on TensorFlow's own gRPC runtime (between-graph replication).

The paper-era recipe, unchanged on TF 2.21 through `tf.compat.v1`: every task runs
`tf.distribute.Server` for its entry of a `ClusterSpec`; parameter servers hold the variables
(`replica_device_setter` places them round-robin) and only serve; every worker builds the whole
training graph against its own server, computes gradients on its own batch and sends them to the
parameter servers: synchronously (`SyncReplicasOptimizer`: one update per step from the average of
every worker's gradient) or asynchronously (each worker's gradient applied as it arrives). Worker
0 is the chief: it initialises or restores the variables, and writes checkpoints and summaries.

The second mode, `--variable_update=collective_all_reduce`, has no parameter servers: every
worker holds every variable (TF1 graph-mode `MultiWorkerMirroredStrategy`, its initial values
broadcast from the chief) and the gradients of each step are summed across workers by
TensorFlow's collective all-reduce (ring, over the same gRPC servers). It is synchronous only.
Graph mode leaves three things to the caller, done here: the `tf.distribute.Server` is started by
this module with the strategy's config (which names worker 0 the collective group leader); a dead
peer is not detected, so the session's operation timeout bounds every collective; and TF's hooks
must not fetch the global step through its initial value (`Job.global_step_read`).

Where TF's runtime has no answer of its own, this module adds the classic one:
- Parameter servers cannot be shut down remotely (`Server.join()` never returns). Each one here
  instead waits on a shared queue for one "done" token per worker (`done_queue`), and exits
  when all have arrived; every worker enqueues its token when it leaves training.
- A dead peer is not detected by the runtime: every distributed session has an operation timeout
  (`--cluster_timeout_secs`), so a worker whose parameter server died fails with one line instead
  of hanging.

The cluster comes from `--job_name --task_index --ps_hosts --worker_hosts`, or from the
`TF_CONFIG` environment variable (the convention of Kubernetes / Kubeflow launchers):
    {"cluster": {"ps": ["host:port", ...], "worker": ["host:port", ...]},
     "task": {"type": "worker", "index": 0}}
"""

import collections
import contextlib
import json
import os
import socket
import sys
import threading
import time

import tensorflow as tf
from absl import logging

from resnet_tf1 import errors

tf1 = tf.compat.v1

JOBS = ("ps", "worker")
VARIABLE_UPDATES = ("parameter_server", "collective_all_reduce")
# The graph collection TF's hooks take the global step read from (training_util's
# GLOBAL_STEP_READ_KEY).
_GLOBAL_STEP_READ_KEY = "global_step_read_op_cache"


class ClusterError(errors.UserError):
    """A cluster flag, TF_CONFIG or port that does not work; the message is one line."""


# job_name: "ps" or "worker"; task_index: this task; ps_hosts, worker_hosts: tuples of
# "host:port"; source: where it came from ("flags" or "TF_CONFIG"), for messages.
ClusterConfig = collections.namedtuple("ClusterConfig", [
    "job_name", "task_index", "ps_hosts", "worker_hosts", "source"])


def _hosts(value, name):
    hosts = tuple(h.strip() for h in (value or "").split(",") if h.strip())
    for h in hosts:
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ClusterError("%s: %r is not host:port" % (name, h))
    if len(set(hosts)) != len(hosts):
        raise ClusterError("%s lists a host:port twice: %s" % (name, ",".join(hosts)))
    return hosts


def from_flags(job_name, task_index, ps_hosts, worker_hosts, variable_update="parameter_server",
               environ=None):
    """The cluster of this process, or None for single-process training.

    Flags win over TF_CONFIG; TF_CONFIG is read only when --job_name is not given.
    Raises ClusterError (one line naming the flag or TF_CONFIG) when they do not describe a
    cluster this task belongs to.
    """
    environ = os.environ if environ is None else environ
    if job_name:
        config = ClusterConfig(job_name, task_index, _hosts(ps_hosts, "--ps_hosts"),
                               _hosts(worker_hosts, "--worker_hosts"), "flags")
        if not config.worker_hosts:
            raise ClusterError("--job_name=%s needs --worker_hosts (comma-separated host:port "
                               "of every worker%s)" % (job_name, ", and --ps_hosts" if
                                                       variable_update == "parameter_server"
                                                       else ""))
    elif ps_hosts or worker_hosts:
        raise ClusterError("--ps_hosts/--worker_hosts need --job_name=ps or worker (and "
                           "--task_index)")
    elif environ.get("TF_CONFIG"):
        config = _from_tf_config(environ["TF_CONFIG"])
        if config is None:
            return None
    else:
        return None
    return _check(config, variable_update)


def _from_tf_config(text):
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise ClusterError("TF_CONFIG is not valid JSON (%s): %.80s" % (e, text))
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster", {}), dict) or \
            not isinstance(spec.get("task", {}), dict):
        raise ClusterError('TF_CONFIG: expected {"cluster": {"ps": [...], "worker": [...]}, '
                           '"task": {"type": "worker", "index": 0}}, got: %.80s' % text)
    cluster, task = spec.get("cluster", {}), spec.get("task", {})
    if not cluster:
        return None  # a TF_CONFIG without a cluster: single-process, as TF itself treats it
    unknown = sorted(set(cluster) - set(JOBS))
    if unknown:
        raise ClusterError("TF_CONFIG: cluster job %s is not supported: expected ps and worker "
                           "(worker 0 is the chief; no separate 'chief' or 'evaluator' job)"
                           % ", ".join(repr(u) for u in unknown))
    for job in JOBS:
        if not isinstance(cluster.get(job, []), list):
            raise ClusterError("TF_CONFIG: cluster.%s must be a list of host:port" % job)
    if task.get("type") not in JOBS:
        raise ClusterError("TF_CONFIG: task.type must be ps or worker, got %r" % task.get("type"))
    if not isinstance(task.get("index"), int) or isinstance(task.get("index"), bool):
        raise ClusterError("TF_CONFIG: task.index must be an integer, got %r"
                           % (task.get("index"),))
    return ClusterConfig(task["type"], task["index"],
                         _hosts(",".join(cluster.get("ps", [])), "TF_CONFIG cluster.ps"),
                         _hosts(",".join(cluster.get("worker", [])), "TF_CONFIG cluster.worker"),
                         "TF_CONFIG")


def _check(config, variable_update):
    where = "--task_index" if config.source == "flags" else "TF_CONFIG task.index"
    hosts = config.ps_hosts if config.job_name == "ps" else config.worker_hosts
    if config.job_name not in JOBS:
        raise ClusterError("--job_name=%s: expected ps or worker" % config.job_name)
    if not 0 <= config.task_index < len(hosts):
        raise ClusterError("%s=%d is not a %s task: the cluster has %d (%s)"
                           % (where, config.task_index, config.job_name, len(hosts),
                              ",".join(hosts) or "none"))
    if variable_update == "parameter_server" and not config.ps_hosts:
        raise ClusterError("--variable_update=parameter_server needs at least one parameter "
                           "server (--ps_hosts or TF_CONFIG cluster.ps)")
    if variable_update == "collective_all_reduce" and config.job_name == "ps":
        raise ClusterError("--variable_update=collective_all_reduce has no parameter servers: "
                           "start workers only")
    return config


def cluster_spec(config, variable_update="parameter_server"):
    jobs = {"worker": list(config.worker_hosts)}
    if variable_update == "parameter_server":
        jobs["ps"] = list(config.ps_hosts)
    return tf.train.ClusterSpec(jobs)


def is_chief(config):
    return config is None or (config.job_name == "worker" and config.task_index == 0)


def task_name(config):
    return "%s%d" % (config.job_name, config.task_index)


def this_host(config):
    hosts = config.ps_hosts if config.job_name == "ps" else config.worker_hosts
    return hosts[config.task_index]


def _check_port(config):
    """ClusterError if this task's port is taken (TF's server would abort the process)."""
    host, _, port = this_host(config).rpartition(":")
    bind_host = "" if host in ("localhost", "127.0.0.1", "0.0.0.0") else host
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As gRPC does: a port left in TIME_WAIT by a task that just ended (a restarted worker) is
    # free; one with a listener on it is not.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((bind_host, int(port)))
    except OSError as e:
        raise ClusterError("%s %s: cannot listen on port %s (%s): is another task or program "
                           "using it?" % (config.job_name, this_host(config), port,
                                          e.strerror or e))
    finally:
        probe.close()


def session_config(config, base, timeout_secs):
    """`base` (a ConfigProto) for a distributed session of this task: it talks to the parameter
    servers and itself only (`device_filters`: a worker never waits on another worker), and every
    operation fails after `timeout_secs` instead of hanging on a dead peer."""
    out = tf1.ConfigProto()
    out.CopyFrom(base)
    del out.device_filters[:]
    if config.job_name == "worker":
        out.device_filters.extend(["/job:ps", "/job:worker/task:%d" % config.task_index])
    else:
        out.device_filters.extend(["/job:ps/task:%d" % config.task_index])
    out.operation_timeout_in_ms = int(timeout_secs * 1000)
    return out


def start_server(config, variable_update="parameter_server", server_config=None):
    """This task's `tf.distribute.Server` (started). ClusterError when its port is taken.

    `server_config` (a ConfigProto) is the server's default session config; collective
    all-reduce needs the strategy's (it names the collective group leader)."""
    _check_port(config)
    server = tf.distribute.Server(cluster_spec(config, variable_update),
                                  job_name=config.job_name, task_index=config.task_index,
                                  config=server_config, start=True)
    logging.info("%s: server up at %s (%s)", task_name(config), this_host(config), server.target)
    return server


def done_queue(ps_index, num_workers):
    """The queue on parameter server `ps_index` that each worker puts a token in when it leaves
    (a shared name: every task's graph refers to the same queue on that server)."""
    with tf1.device("/job:ps/task:%d" % ps_index):
        return tf1.FIFOQueue(num_workers, tf.int32, shapes=[], shared_name="done_queue_%d"
                             % ps_index, name="done_queue_%d" % ps_index)


def run_parameter_server(config):
    """Serves until every worker has put its token into this server's done queue, then returns.
    (A worker that never finishes keeps it serving: the launcher or scheduler stops it.)"""
    server = start_server(config)
    num_workers = len(config.worker_hosts)
    graph = tf.Graph()
    with graph.as_default():
        take = done_queue(config.task_index, num_workers).dequeue()
    session_cfg = tf1.ConfigProto(device_filters=["/job:ps/task:%d" % config.task_index])
    with tf1.Session(server.target, graph=graph, config=session_cfg) as sess:
        for done in range(num_workers):
            worker = sess.run(take)
            logging.info("%s: worker %d finished (%d of %d)", task_name(config), worker,
                         done + 1, num_workers)
    # Linger a moment, so that the last worker's enqueue gets its reply before this server goes.
    time.sleep(2)
    logging.info("%s: every worker has finished; shutting down", task_name(config))


def done_ops(config):
    """Ops (in the current graph) that put this worker's token into every parameter server's
    done queue."""
    return [done_queue(i, len(config.worker_hosts)).enqueue(config.task_index)
            for i in range(len(config.ps_hosts))]


def signal_done(config, server, timeout_secs=60):
    """Puts this worker's token into every parameter server's done queue (its own graph and
    session: the chief's training session is closed by then, its last checkpoint written)."""
    graph = tf.Graph()
    with graph.as_default():
        ops = done_ops(config)
    session_cfg = tf1.ConfigProto(device_filters=["/job:ps"],
                                  operation_timeout_in_ms=int(timeout_secs * 1000))
    start = time.time()
    sess = tf1.Session(server.target, graph=graph, config=session_cfg)
    try:
        sess.run(ops)
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
            tf.errors.DeadlineExceededError) as e:
        # A parameter server that has all tokens ends at once and may drop this reply; one that
        # died earlier cannot be told. Either way this worker's work is written: not an error.
        logging.warning("%s: could not confirm its done token to the parameter server(s) (%s); "
                        "they may have ended already", task_name(config), type(e).__name__)
        return
    finally:
        # Closing a session to a server that is going away can block (TF gives up after 30 s);
        # the process ends right after this, so it is closed in the background.
        threading.Thread(target=sess.close, daemon=True).start()
    logging.info("%s: told %d parameter server(s) it is done (%.1f s)", task_name(config),
                 len(ops), time.time() - start)


class Job:
    """How a worker of a cluster trains: the cluster, the variable update, synchronous or not.

    `variable_update`: "parameter_server" (variables on the PS tasks) or "collective_all_reduce"
    (every worker holds every variable; gradients meet in TensorFlow's collective all-reduce,
    through the graph-mode `MultiWorkerMirroredStrategy`; always synchronous).
    `sync_replicas`: with parameter servers, average every worker's gradient into one update per
    step (SyncReplicasOptimizer, no stale gradients: each worker waits for the update before its
    next step) instead of applying each worker's gradient as it comes.
    `timeout_secs`: the bound on any one operation of a distributed session (a dead peer).
    """

    def __init__(self, config, variable_update="parameter_server", sync_replicas=True,
                 timeout_secs=300):
        if variable_update not in VARIABLE_UPDATES:
            raise ClusterError("--variable_update=%s: expected %s"
                               % (variable_update, " or ".join(VARIABLE_UPDATES)))
        if variable_update == "collective_all_reduce" and not sync_replicas:
            raise ClusterError("--nosync_replicas: --variable_update=collective_all_reduce is "
                               "synchronous only (asynchronous updates need parameter servers)")
        self.config = config
        self.variable_update = variable_update
        self.sync_replicas = sync_replicas
        self.timeout_secs = timeout_secs
        self.sync_optimizer = None
        self.strategy = None
        # Set once the training session's hooks have ended (the chief's final checkpoint is
        # written then).
        self.hooks_ended = threading.Event()

    @property
    def num_workers(self):
        return len(self.config.worker_hosts)

    @property
    def is_chief(self):
        return is_chief(self.config)

    @property
    def collective(self):
        return self.variable_update == "collective_all_reduce"

    @property
    def worker_device(self):
        return "/job:worker/task:%d" % self.config.task_index

    def build_strategy(self, num_gpus=0):
        """Collective all-reduce: this worker's `MultiWorkerMirroredStrategy` (TF1 graph mode),
        with `num_gpus` local replicas (0: one, on the CPU). Call it inside the training graph:
        built eagerly, the strategy would start a second server of its own."""
        if not self.collective:
            return None
        if tf1.executing_eagerly_outside_functions():
            raise RuntimeError("Job.build_strategy must be called inside a tf.Graph")
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            cluster_spec(self.config, self.variable_update), task_type="worker",
            task_id=self.config.task_index, num_accelerators={"GPU": num_gpus},
            rpc_layer="grpc")
        self.strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver)
        return self.strategy

    def server_config(self):
        """The server's default session config (collective: the strategy's, which names worker 0
        the collective group leader; call build_strategy first), or None."""
        if self.strategy is None:
            return None
        return self.strategy.update_config_proto(tf1.ConfigProto())

    def session_config(self, base):
        """`base` for this worker's distributed session (see the module's `session_config`)."""
        out = session_config(self.config, base, self.timeout_secs)
        if self.strategy is not None:
            # The strategy's device filter (this worker only: collectives do not need the
            # session to see the peers), group leader and all-reduce rewrite.
            out = self.strategy.update_config_proto(out)
        return out

    def global_step_read(self, global_step):
        """Collective all-reduce: registers this worker's own read of the global step as the
        graph's cached "global step read" tensor, which TF's hooks (StopAtStepHook,
        CheckpointSaverHook, SummarySaverHook) fetch on every run they take part in.

        TF's own (`training_util._get_or_create_global_step_read`) takes the variable's
        initial value when it is not yet initialised, and the initial value of a
        MultiWorkerMirroredStrategy variable is a collective broadcast from the chief: every
        run that fetched it would join a broadcast, and the chief's checkpoint and summary runs,
        which the other workers do not make, would wait for them forever. The variable is
        always initialised before the first run here (the session creator sees to it)."""
        graph = tf1.get_default_graph()
        if self.strategy is None or graph.get_collection(_GLOBAL_STEP_READ_KEY):
            return
        with graph.name_scope(None), graph.name_scope(global_step.op.name + "/"):
            read = tf.identity(global_step.read_value(), name="local_read")
        graph.add_to_collection(_GLOBAL_STEP_READ_KEY, read)

    @contextlib.contextmanager
    def scope(self):
        """The context the training graph is built in: with parameter servers the device setter
        (variables round-robin on the PS tasks, every other op on this worker); with collective
        all-reduce the strategy's scope (every variable mirrored on this worker's replicas)."""
        if self.strategy is not None:
            with self.strategy.scope(), tf1.variable_creator_scope(_replicated_statistics):
                yield
        elif self.collective:
            raise RuntimeError("Job.scope needs Job.build_strategy first")
        else:
            with tf1.device(self.device_setter()):
                yield

    def device_setter(self):
        """Variables round-robin on the PS tasks, every other op on this worker."""
        return tf1.train.replica_device_setter(
            worker_device=self.worker_device, cluster=cluster_spec(self.config))

    def wrap_optimizer(self, optimizer):
        if not self.sync_replicas or self.collective:
            return optimizer
        self.sync_optimizer = tf1.train.SyncReplicasOptimizer(
            optimizer, replicas_to_aggregate=self.num_workers,
            total_num_replicas=self.num_workers)
        return self.sync_optimizer

    def hooks(self):
        if self.sync_optimizer is None:
            return []
        if self.is_chief:
            # The chief's queue runner is always blocked waiting for the next step's gradients
            # when training ends; closing the session cancels it. That is the expected end, not
            # an error to print a thread traceback for.
            runner = self.sync_optimizer.get_chief_queue_runner()
            runner._queue_closed_exception_types = (  # pylint: disable=protected-access
                tf.errors.OutOfRangeError, tf.errors.CancelledError)
        # num_tokens=0: no worker starts a step ahead of the last update (lockstep, no stale
        # gradient is ever computed).
        return [self.sync_optimizer.make_session_run_hook(self.is_chief, num_tokens=0)]

    def release_tokens_op(self):
        """Chief, at the end: one token per worker, so that no worker stays blocked waiting for an
        update that will not come (the classic SyncReplicasOptimizer end-of-training hang)."""
        if self.sync_optimizer is None or not self.is_chief:
            return None
        return self.sync_optimizer.get_init_tokens_op(self.num_workers)

    def session(self, server, scaffold, hooks, model_dir, summary_steps, base_config):
        """This worker's training session on `server`: the chief's initialises or restores from
        `model_dir`, saves and writes summaries every `summary_steps`; another worker's waits
        for the chief (at most --cluster_timeout_secs). With collective all-reduce every worker
        initialises (the initial values are broadcast from the chief) or restores its own copy;
        only the chief writes summaries. It never re-creates itself on a lost peer: the run
        fails with one line instead."""
        config = self.session_config(base_config)
        if self.is_chief or self.collective:
            creator = tf1.train.ChiefSessionCreator(scaffold, master=server.target,
                                                    config=config, checkpoint_dir=model_dir)
            if self.is_chief:
                hooks = hooks + [tf1.train.SummarySaverHook(
                    save_steps=summary_steps, output_dir=model_dir, scaffold=scaffold)]
        else:
            creator = _WorkerSessionCreator(scaffold, master=server.target, config=config,
                                            max_wait_secs=self.timeout_secs)
        # The grace period is how long closing waits for queue-runner threads; the only one
        # here, the synchronous chief's, is blocked on the next step's gradients by then.
        return _NonRecoveringSession(creator, hooks + [_EndedHook(self.hooks_ended)],
                                     stop_grace_period_secs=1)

    @contextlib.contextmanager
    def closing(self, sess):
        """`with sess:`, with the close waited for until every hook's `end` has run (the
        chief's final checkpoint and summaries), then at most 1 s more: TF's gRPC session close
        was seen to block for 30-40 s at the end of a job, and forever with a dead peer."""
        try:
            yield sess
        except BaseException:
            self._bounded_close(sess, sys.exc_info())
            raise
        self._bounded_close(sess, (None, None, None), timeout_secs=1, ended=self.hooks_ended)

    def _bounded_close(self, sess, exc_info, timeout_secs=5, ended=None):
        """Closes in a thread; waits for `ended` up to --cluster_timeout_secs, then for the
        rest `timeout_secs`."""
        graph = tf1.get_default_graph()

        def close():
            with graph.as_default():  # the default graph is per thread; the final save needs it
                sess.__exit__(*exc_info)

        closer = threading.Thread(target=close, daemon=True)
        closer.start()
        deadline = time.time() + self.timeout_secs
        while ended is not None and closer.is_alive() and time.time() < deadline:
            if ended.wait(timeout=0.2):
                break
        closer.join(timeout=timeout_secs)
        if closer.is_alive():
            logging.info("%s: closing the cluster session took over %d s; not waiting for it",
                         task_name(self.config), timeout_secs)

    def last_runs(self):
        """[(op, log line or None)] this worker runs once after its last step, inside its
        session: the synchronous chief releases a token per worker; a worker that is not the
        chief tells the parameter servers it is done (the chief does that after its final
        checkpoint, `signal_done`). Build them with the training graph."""
        runs = []
        release = self.release_tokens_op()
        if release is not None:
            runs.append((release, None))
        if not self.is_chief and self.variable_update == "parameter_server":
            runs.append((done_ops(self.config), "%s: told the parameter server(s) it is done"
                         % task_name(self.config)))
        return runs

    def describe(self, batch_size):
        n = self.num_workers
        if self.collective:
            replicas = self.strategy.num_replicas_in_sync if self.strategy else n
            how = ("synchronous: one update per step from the mean of %d replicas' gradients "
                   "(TensorFlow's collective all-reduce, no parameter server), so "
                   "--learning_rate applies to the global batch as given (not scaled); BN "
                   "normalises each replica's own batch, its moving averages are the mean of "
                   "the replicas'" % replicas)
        elif self.sync_replicas:
            how = ("synchronous: one update per step from the average of %d workers' gradients, "
                   "so --learning_rate applies to the global batch as given (not scaled)" % n)
        else:
            how = ("asynchronous: each worker's gradient is applied as it arrives (the global "
                   "step counts updates from every worker), at --learning_rate as given")
        return ("%s of %d workers, %d parameter server(s), %s; global batch %d = %d workers x "
                "--batch_size=%d; %s" % (task_name(self.config), n, len(self.config.ps_hosts),
                                         self.variable_update, n * batch_size, n, batch_size, how))


def _replicated_statistics(next_creator, **kwargs):
    """Variable creator (collective all-reduce): a variable that is not trained but updated in
    every replica (BN moving averages, the BN update count) gets an aggregation, so that each
    update is the mean of the replicas' (the count: the first replica's) and every worker's copy
    stays the same. Without one, each replica would update only its own copy: the workers'
    statistics would drift apart and the chief's checkpoint would hold its own alone."""
    aggregation = kwargs.get("aggregation")
    if not kwargs.get("trainable", True) and aggregation in (None, tf.VariableAggregation.NONE):
        dtype = kwargs.get("dtype")
        if dtype is not None and tf.as_dtype(dtype).is_integer:
            kwargs["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
        elif dtype is not None and tf.as_dtype(dtype).is_floating:
            kwargs["aggregation"] = tf.VariableAggregation.MEAN
    return next_creator(**kwargs)


class _NonRecoveringSession(tf1.train.MonitoredSession):
    """A MonitoredSession that does not re-create its session on Unavailable/Aborted errors.

    The recovering default retries forever when a parameter server is gone; a worker of a
    cluster should fail with one line instead (TF's private base takes the switch)."""

    def __init__(self, session_creator, hooks, stop_grace_period_secs):
        super(tf1.train.MonitoredSession, self).__init__(  # pylint: disable=bad-super-call
            session_creator, hooks, should_recover=False,
            stop_grace_period_secs=stop_grace_period_secs)


class _WorkerSessionCreator(tf1.train.WorkerSessionCreator):
    """A non-chief worker's session: it polls for the chief's initialisation every second, not
    every 30 seconds (TF's default), and gives up after `max_wait_secs` with one line."""

    def _get_session_manager(self):
        if self._session_manager is None:
            self._session_manager = tf1.train.SessionManager(
                local_init_op=self._scaffold.local_init_op,
                local_init_feed_dict=self._scaffold.local_init_feed_dict,
                ready_op=self._scaffold.ready_op,
                ready_for_local_init_op=self._scaffold.ready_for_local_init_op,
                graph=tf1.get_default_graph(), recovery_wait_secs=1)
        return self._session_manager


class _EndedHook(tf1.train.SessionRunHook):
    """The last hook of a cluster session: sets `event` once every hook's `end` has run (the
    chief's final checkpoint is written and its summaries flushed), so that the close does not
    have to be waited for past that point."""

    def __init__(self, event):
        self._event = event

    def end(self, session):
        self._event.set()
