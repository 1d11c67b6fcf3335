"""Multi-worker training on TensorFlow's gRPC runtime, on loopback: every task is a child process
in its own process group, bounded in time and killed in `finally` whatever the test's outcome."""

import contextlib
import functools
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from resnet_tf1 import cluster

import test_training

ROOT = test_training.ROOT
TRAIN = os.path.join(ROOT, "scripts", "train.py")
LAUNCH = os.path.join(ROOT, "scripts", "launch_local_cluster.py")


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")


def _ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _train_args(cifar_dir, model_dir, **overrides):
    args = {"dataset": "cifar10", "data_dir": cifar_dir, "model_dir": model_dir, "depth": 8,
            "batch_size": 4, "max_steps": 12, "lr_boundaries": "", "learning_rate": 0.05,
            "save_checkpoints_steps": 6, "log_every_n_steps": 2, "recompute_bn_batches": 0,
            "seed": 1}
    args.update(overrides)
    return ["--%s=%s" % kv for kv in args.items()]


class Tasks:
    """Child processes (own process groups, output in files) that are always killed at exit."""

    def __init__(self, tmp_path):
        self.tmp_path, self.procs = tmp_path, {}

    def start(self, name, argv, env=None):
        log = open(str(self.tmp_path / ("%s.log" % name)), "a")
        self.procs[name] = subprocess.Popen(
            [sys.executable] + argv, stdout=log, stderr=subprocess.STDOUT, env=env or _env(),
            start_new_session=True)
        return self.procs[name]

    def output(self, name):
        return open(str(self.tmp_path / ("%s.log" % name))).read()

    def wait_for(self, name, text, timeout=240):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output(name):
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError("%s never printed %r:\n%s" % (name, text, self.output(name)[-3000:]))

    def kill(self, name, sig=signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, sig)
        self.procs[name].wait(timeout=60)

    def close(self):
        # SIGTERM first: the launcher stops its own tasks (each in its own process group) then.
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 20
        while time.time() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.2)
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for line in _running(str(self.tmp_path)):  # anything else of this test's, whatever it is
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line[0]), signal.SIGKILL)


@pytest.fixture
def tasks(tmp_path):
    t = Tasks(tmp_path)
    try:
        yield t
    finally:
        t.close()


def _running(pattern):
    """(pid, command line) of live processes that mention `pattern` (zombies have none)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            with contextlib.suppress(OSError):
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    args = f.read().replace(b"\0", b" ").decode(errors="replace")
                if pattern in args:
                    found.append((pid, args))
    return found


def _step(model_dir):
    return int(tf.train.load_checkpoint(model_dir).get_tensor("global_step"))


# ---- configuration errors: one line each ------------------------------------------------------

@pytest.mark.parametrize("kwargs, environ, message", [
    (dict(job_name="worker", task_index=0, ps_hosts=None, worker_hosts=None), {},
     r"--job_name=worker needs --worker_hosts"),
    (dict(job_name="worker", task_index=2, ps_hosts="a:1", worker_hosts="b:1,c:1"), {},
     r"--task_index=2 is not a worker task: the cluster has 2"),
    (dict(job_name="ps", task_index=0, ps_hosts="a", worker_hosts="b:1"), {},
     r"--ps_hosts: 'a' is not host:port"),
    (dict(job_name=None, task_index=0, ps_hosts="a:1", worker_hosts=None), {},
     r"need --job_name"),
    (dict(job_name=None, task_index=0, ps_hosts=None, worker_hosts=None),
     {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]'}, r"TF_CONFIG is not valid JSON"),
    (dict(job_name=None, task_index=0, ps_hosts=None, worker_hosts=None),
     {"TF_CONFIG": '{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief"}}'},
     r"TF_CONFIG: task.type must be ps or worker, got 'chief'"),
    (dict(job_name=None, task_index=0, ps_hosts=None, worker_hosts=None),
     {"TF_CONFIG": '{"cluster": {"worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}'},
     r"parameter_server needs at least one parameter server"),
])
def test_bad_cluster_configurations_are_one_line(kwargs, environ, message):
    with pytest.raises(cluster.ClusterError, match=message) as e:
        cluster.from_flags(environ=environ, **kwargs)
    assert "\n" not in str(e.value)


def test_tf_config_and_flags_describe_the_same_cluster():
    spec = {"cluster": {"ps": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]},
            "task": {"type": "worker", "index": 1}}
    a = cluster.from_flags(None, 0, None, None, environ={"TF_CONFIG": json.dumps(spec)})
    b = cluster.from_flags("worker", 1, "h0:2222", "h1:2222,h2:2222", environ={})
    assert a[:4] == b[:4] == ("worker", 1, ("h0:2222",), ("h1:2222", "h2:2222"))
    assert cluster.from_flags(None, 0, None, None, environ={}) is None


def test_a_port_in_use_is_one_line():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        config = cluster.ClusterConfig("worker", 0, ("127.0.0.1:1",), ("127.0.0.1:%d" % port,),
                                       "flags")
        with pytest.raises(cluster.ClusterError, match="cannot listen on port %d" % port):
            cluster.start_server(config)
    finally:
        busy.close()


def test_train_py_reports_a_cluster_error_in_one_line(tmp_path):
    env = dict(_env(), TF_CONFIG="{not json")
    r = subprocess.run([sys.executable, TRAIN, "--model_dir=%s" % (tmp_path / "run")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("train: error: TF_CONFIG is not valid JSON")
    assert not os.path.exists(str(tmp_path / "run"))


# ---- a synchronous step equals one step on the concatenated batch -----------------------------

def test_two_synchronous_workers_give_one_workers_update_at_twice_the_batch(tmp_path):
    rng = np.random.RandomState(0)
    half = rng.normal(0, 50, (4, 32, 32, 3)).astype(np.float32)
    labels = rng.randint(0, 10, 4).astype(np.int32)
    out = str(tmp_path / "sync")
    np.savez(out + ".in.npz", images=half, labels=labels)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "cluster_sync_step.py"), out,
                        ",".join(str(p) for p in _ports(3)), str(tmp_path / "run")],
                       env=_env(), capture_output=True, text=True, timeout=400,
                       start_new_session=True)
    assert r.returncode == 0, r.stderr[-3000:]
    synced = dict(np.load(out + ".npz"))
    # Identical halves: each worker's BN statistics are the whole batch's, so the average of the
    # two workers' gradients is the gradient of one step at batch 8 on the concatenation.
    single = test_training._one_step(1, np.concatenate([half, half]),
                                     np.concatenate([labels, labels]))
    assert int(synced.pop("global_step")) == 1 == int(single.pop("global_step"))
    # Both workers' BN updates ran (the statistics are each worker's own: local BN).
    assert int(synced.pop("cifar_resnet20/bn_update_count")) == 2
    single.pop("cifar_resnet20/bn_update_count")
    synced = {k: v for k, v in synced.items() if "sync_rep" not in k and "local_step" not in k}
    assert set(synced) == set(single)
    for name, a in single.items():
        b = synced[name]
        if name.endswith("moving_variance"):  # unbiased variance: n / (n - 1) of each batch
            n = 8 * test_training._spatial(name)
            a, b = a * (n - 1) / n, b * (n // 2 - 1) / (n // 2)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)


def test_two_collective_workers_give_one_workers_update_at_twice_the_batch(tmp_path):
    rng = np.random.RandomState(0)
    half = rng.normal(0, 50, (4, 32, 32, 3)).astype(np.float32)
    labels = rng.randint(0, 10, 4).astype(np.int32)
    out = str(tmp_path / "collective")
    np.savez(out + ".in.npz", images=half, labels=labels)
    ports = ",".join(str(p) for p in _ports(2))
    script = os.path.join(ROOT, "tests", "cluster_collective_step.py")
    procs = [subprocess.Popen([sys.executable, script, out, ports, str(tmp_path / "run"), str(i)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True) for i in (0, 1)]
    try:
        logs = [p.communicate(timeout=400)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    chief, other = dict(np.load(out + ".npz")), dict(np.load(out + ".worker1.npz"))
    # Every worker holds the same variables after the step (weights, BN statistics, step).
    assert set(chief) == set(other)
    for name in chief:
        np.testing.assert_array_equal(other[name], chief[name], err_msg=name)
    single = test_training._one_step(1, np.concatenate([half, half]),
                                     np.concatenate([labels, labels]))
    assert int(chief.pop("global_step")) == 1 == int(single.pop("global_step"))
    # One BN update per step: the moving averages move by the mean of the workers' statistics.
    assert int(chief.pop("cifar_resnet20/bn_update_count")) == 1
    single.pop("cifar_resnet20/bn_update_count")
    assert set(chief) == set(single)
    for name, a in single.items():
        b = chief[name]
        if name.endswith("moving_variance"):  # unbiased variance: n / (n - 1) of each batch
            n = 8 * test_training._spatial(name)
            a, b = a * (n - 1) / n, b * (n // 2 - 1) / (n // 2)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)


# ---- the launcher -----------------------------------------------------------------------------

def _evaluate(cifar_dir, model_dir):
    """Single-process evaluate.py on the chief's latest checkpoint; its metrics.json."""
    e = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"),
                        "--dataset=cifar10", "--data_dir=" + cifar_dir, "--model_dir=" + model_dir,
                        "--depth=8", "--batch_size=50"], env=_env(), capture_output=True,
                       text=True, timeout=300)
    assert e.returncode == 0, e.stderr[-3000:]
    return json.load(open(os.path.join(model_dir, "eval", "metrics.json")))


@pytest.mark.slow
def test_local_cluster_trains_and_the_chief_checkpoint_evaluates(cifar_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    r = subprocess.run([sys.executable, LAUNCH, "--num_ps=1", "--num_workers=2", "--"]
                       + _train_args(cifar_dir, model_dir, recompute_bn_batches=1),
                       env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]
    for task in ("ps0", "worker0", "worker1"):
        assert "[%s] " % task in r.stdout
    assert "global batch 8 = 2 workers x --batch_size=4" in r.stdout
    assert "ps0: every worker has finished" in r.stdout
    assert _step(model_dir) == 12
    assert os.path.isdir(os.path.join(model_dir, "bn_recomputed"))
    assert not _running(model_dir), "a task outlived the launcher"
    metrics = _evaluate(cifar_dir, model_dir)
    assert metrics["global_step"] == 12 and 0 <= metrics["top_1_accuracy"] <= 1


@pytest.mark.slow
def test_collective_all_reduce_trains_resumes_and_the_chief_checkpoint_evaluates(cifar_dir,
                                                                                 tmp_path):
    model_dir = str(tmp_path / "run")
    args = _train_args(cifar_dir, model_dir, variable_update="collective_all_reduce")
    r = subprocess.run([sys.executable, LAUNCH, "--num_workers=2", "--"] + args, env=_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "0 parameter server(s)" in r.stdout and "collective_all_reduce" in r.stdout
    assert "global batch 8 = 2 workers x --batch_size=4" in r.stdout
    assert _step(model_dir) == 12
    assert not _running(model_dir), "a task outlived the launcher"
    metrics = _evaluate(cifar_dir, model_dir)
    assert metrics["global_step"] == 12 and 0 <= metrics["top_1_accuracy"] <= 1
    # A full restart: both workers restore the chief's last checkpoint and go on from step 12.
    r = subprocess.run([sys.executable, LAUNCH, "--num_workers=2", "--"]
                       + [a for a in args if not a.startswith("--max_steps")]
                       + ["--max_steps=16"], env=_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "[worker0] " in r.stdout and "resumed from step 12" in r.stdout
    assert r.stdout.count("resumed from step 12") == 2  # the chief and worker 1
    assert _step(model_dir) == 16


@functools.lru_cache(maxsize=None)
def _launcher():
    """scripts/launch_local_cluster.py as a module, loaded once (it defines absl flags)."""
    spec = importlib.util.spec_from_file_location("launch_local_cluster", LAUNCH)
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    return launcher


def test_the_launcher_finds_the_variable_update_in_flagfiles_too(tmp_path):
    launcher = _launcher()
    inner, outer = tmp_path / "inner.flags", tmp_path / "outer.flags"
    inner.write_text("# collective\n--variable_update=collective_all_reduce\n")
    outer.write_text("--depth=20\n--flagfile=%s\n" % inner)
    find = launcher.variable_update
    assert find(["--depth=20"]) is None
    assert find(["--flagfile=%s" % outer]) == "collective_all_reduce"
    # The last one wins, as absl reads them.
    assert find(["--flagfile=%s" % outer, "--variable_update=parameter_server"]) == \
        "parameter_server"
    assert find(["--variable_update=parameter_server", "--flagfile=%s" % inner]) == \
        "collective_all_reduce"


def test_collective_all_reduce_refuses_asynchronous_updates():
    with pytest.raises(cluster.ClusterError, match="--nosync_replicas: .*synchronous only"):
        cluster.Job(cluster.ClusterConfig("worker", 0, (), ("a:1", "b:1"), "flags"),
                    "collective_all_reduce", sync_replicas=False)


def test_a_failing_task_stops_the_cluster(cifar_dir, tmp_path):
    """Workers that fail at start (no data) must not leave the parameter server waiting."""
    model_dir = str(tmp_path / "run")
    r = subprocess.run([sys.executable, LAUNCH, "--num_workers=2", "--"]
                       + _train_args(str(tmp_path / "missing"), model_dir),
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout[-3000:]
    assert re.search(r"worker\d failed \(exit code 1\)(; also failed: worker\d \(exit code 1\))?"
                     r"; stopped the other tasks. Its last lines:", r.stdout), r.stdout[-3000:]
    assert "train: error:" in r.stdout.split("Its last lines:")[-1]
    assert not _running(model_dir)


def test_the_launcher_tells_a_tasks_own_lines_from_the_runtimes():
    launcher = _launcher()
    task = launcher.Task.__new__(launcher.Task)
    task._in_runtime_record = False
    lines = [  # a surviving collective worker's output (TF 2.21), in order; True: runtime
        (True, "WARNING: All log messages before absl::InitializeLog() is called are written "
               "to STDERR"),
        (True, "I0000 00:00:1796300167.514999    8367 cpu_feature_guard.cc:227] This "
               "TensorFlow binary is optimized to use available CPU instructions"),
        (True, "To enable the following instructions: AVX2 AVX512F, in other operations"),
        (False, "I1203 12:21:50.228434 140362287401856 train_lib.py:336] step 1280/100000  "
                "loss 0.5698"),
        (False, "INFO:tensorflow:Saving checkpoints for 1000 into /tmp/cl/run/model.ckpt."),
        (True, "E0000 00:00:1796300511.470226   10012 ring_alg.cc:291] Aborting RingReduce "
               "with UNAVAILABLE: Collective ops is aborted by: recvmsg:Connection reset"),
        (True, "Additional GRPC error information from remote target /job:worker/replica:0/"
               "task:1 while calling /tensorflow.WorkerService/RecvBuf:"),
        (True, ':UNKNOWN:Error received from peer  {grpc_message:"recvmsg:Connection reset '
               'by peer", grpc_status:14}'),
        (False, "train: error: worker0: lost the cluster (UnavailableError: ...)"),
    ]
    assert [task.is_runtime_line(line) for _, line in lines] == [r for r, _ in lines]


def test_a_lost_peers_error_line_is_the_informative_one():
    """What a collective worker's UnavailableError says when its peer dies (TF 2.21): the one
    line shown is the cause, not the "From /job:" header or the gRPC details."""
    from resnet_tf1 import fileio
    error = tf.errors.UnavailableError(None, None, (
        "From /job:worker/replica:0/task:0:\n"
        "Collective ops is aborted by: recvmsg:Connection reset by peer\n"
        "Additional GRPC error information from remote target /job:worker/replica:0/task:1 "
        "while calling /tensorflow.WorkerService/RecvBuf:\n"
        ':UNKNOWN:Error received from peer  {grpc_message:"recvmsg:Connection reset by peer", '
        "grpc_status:14}"))
    assert fileio.error_line(error) == ("Collective ops is aborted by: recvmsg:Connection reset "
                                        "by peer")


@pytest.mark.slow
def test_the_launcher_reports_a_killed_collective_worker_with_its_own_last_lines(cifar_dir,
                                                                                 tmp_path,
                                                                                 tasks):
    model_dir = str(tmp_path / "run")
    env = dict(_env(), TF_CPP_MIN_LOG_LEVEL="0")  # every runtime line, as users see them
    tasks.start("launcher", [LAUNCH, "--num_workers=2", "--tail_lines=5", "--"]
                + _train_args(cifar_dir, model_dir, max_steps=100000, log_every_n_steps=1,
                              variable_update="collective_all_reduce",
                              cluster_timeout_secs=30), env=env)
    tasks.wait_for("launcher", "step 4/100000")
    worker1 = next(pid for pid, cmd in _running(model_dir) if "--task_index=1" in cmd)
    os.kill(int(worker1), signal.SIGKILL)
    assert tasks.procs["launcher"].wait(timeout=120) == 1
    out = tasks.output("launcher")
    head, last = out.split("Its last lines:")
    # The root failure first; worker 0 fails too unless the launcher stopped it first.
    match = re.search(r"launch_local_cluster: worker1 failed \(signal 9\)(; also failed: "
                      r"worker0 \(exit code 1\))?; stopped the other tasks.", head)
    assert match, out[-3000:]
    shown = [l for l in last.splitlines() if l.startswith("  [")]
    own = [l for l in shown if l.startswith("  [worker1] ")]
    # The killed worker's own last log lines (its progress), not the runtime's.
    assert own and all(".py:" in l for l in own) and "/100000  loss" in own[-1], shown
    if match.group(1):
        assert shown[-1].startswith("  [worker0] train: error: worker0: lost the cluster"), shown
        assert "From /job:" not in shown[-1], shown[-1]  # the informative line, not its header
    assert "E0000" not in out and "Additional GRPC error information" not in out
    assert re.search(r"launch_local_cluster: \d+ line\(s\) of TensorFlow runtime logs not "
                     r"shown", out)
    assert not _running(model_dir)


def test_sigterm_to_the_launcher_stops_every_task(cifar_dir, tmp_path, tasks):
    model_dir = str(tmp_path / "run")
    tasks.start("launcher", [LAUNCH, "--num_workers=2", "--"]
                + _train_args(cifar_dir, model_dir, max_steps=100000))
    tasks.wait_for("launcher", "step 2/100000")
    assert len(_running(model_dir)) == 4  # the launcher and its three tasks
    os.kill(tasks.procs["launcher"].pid, signal.SIGTERM)
    assert tasks.procs["launcher"].wait(timeout=60) == 128 + signal.SIGTERM
    assert "SIGTERM received: stopping every task" in tasks.output("launcher")
    assert not _running(model_dir)


# ---- failures: a worker that comes back, a parameter server that does not ----------------------

def _cluster_args(ports):
    return ["--ps_hosts=127.0.0.1:%d" % ports[0],
            "--worker_hosts=127.0.0.1:%d,127.0.0.1:%d" % (ports[1], ports[2])]


@pytest.mark.slow
def test_a_killed_worker_restarted_rejoins_and_the_job_finishes(cifar_dir, tmp_path, tasks):
    model_dir = str(tmp_path / "run")
    ports = _ports(3)
    args = _train_args(cifar_dir, model_dir, max_steps=30) + _cluster_args(ports)
    tasks.start("ps0", [TRAIN] + args + ["--job_name=ps"])
    tasks.start("worker0", [TRAIN] + args + ["--job_name=worker", "--task_index=0"])
    tasks.start("worker1", [TRAIN] + args + ["--job_name=worker", "--task_index=1"])
    tasks.wait_for("worker1", "step 6/30")
    tasks.kill("worker1")
    # Synchronous: the chief cannot step without worker 1; the restarted one joins the job.
    tasks.start("worker1", [TRAIN] + args + ["--job_name=worker", "--task_index=1"])
    for name in ("worker0", "worker1", "ps0"):
        assert tasks.procs[name].wait(timeout=300) == 0, tasks.output(name)[-3000:]
    assert _step(model_dir) == 30
    assert "starting at step" in tasks.output("worker1").split("step 6/30")[-1]


def test_a_killed_parameter_server_fails_the_workers_in_bounded_time(cifar_dir, tmp_path, tasks):
    model_dir = str(tmp_path / "run")
    ports = _ports(3)
    args = (_train_args(cifar_dir, model_dir, max_steps=100000) + _cluster_args(ports)
            + ["--cluster_timeout_secs=30"])
    tasks.start("ps0", [TRAIN] + args + ["--job_name=ps"])
    tasks.start("worker0", [TRAIN] + args + ["--job_name=worker", "--task_index=0"])
    tasks.start("worker1", [TRAIN] + args + ["--job_name=worker", "--task_index=1"])
    tasks.wait_for("worker0", "step 4/100000")
    tasks.kill("ps0")
    killed = time.time()
    for name in ("worker0", "worker1"):
        assert tasks.procs[name].wait(timeout=120) == 1
        last = tasks.output(name).strip().splitlines()[-1]
        assert last.startswith("train: error: %s: lost the cluster" % name), last
    assert time.time() - killed < 90


def test_a_killed_collective_worker_fails_the_other_in_bounded_time(cifar_dir, tmp_path, tasks):
    """In graph mode nothing watches the peers of a collective all-reduce: the session's
    operation timeout turns a dead worker into one line instead of a hang."""
    model_dir = str(tmp_path / "run")
    ports = _ports(2)
    args = (_train_args(cifar_dir, model_dir, max_steps=100000,
                        variable_update="collective_all_reduce")
            + ["--worker_hosts=127.0.0.1:%d,127.0.0.1:%d" % tuple(ports),
               "--cluster_timeout_secs=30"])
    tasks.start("worker0", [TRAIN] + args + ["--job_name=worker", "--task_index=0"])
    tasks.start("worker1", [TRAIN] + args + ["--job_name=worker", "--task_index=1"])
    tasks.wait_for("worker0", "step 4/100000")
    tasks.kill("worker1")
    killed = time.time()
    assert tasks.procs["worker0"].wait(timeout=120) == 1
    last = tasks.output("worker0").strip().splitlines()[-1]
    assert re.match(r"train: error: worker0: lost the cluster \((Unavailable|DeadlineExceeded)"
                    r"Error: another worker stopped answering", last), last
    assert time.time() - killed < 90
