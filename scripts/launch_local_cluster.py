#!/usr/bin/env python
"""Run scripts/train.py as a cluster of processes on this machine (TensorFlow's gRPC runtime on
127.0.0.1, free ports chosen here):

    python scripts/launch_local_cluster.py --num_ps=1 --num_workers=2 -- \\
        --flagfile=scripts/flags/cifar10_resnet20.flags --model_dir=runs/r20_cluster

Everything after `--` goes to every task's train.py, followed by its own --job_name,
--task_index, --ps_hosts and --worker_hosts. Each task's output is streamed with a [ps0] /
[worker1] prefix. Returns when the workers have finished, with the chief's (worker 0's) exit
code; the parameter servers end by themselves once every worker has told them it is done.

No process is left behind: when a task fails, the others are stopped, the failing task's last
lines are shown and the exit code is non-zero; SIGINT / SIGTERM to the launcher stop every task.
For N real machines, run the same train.py command on each with its own role (BUILD.md).
"""

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app, flags

FLAGS = flags.FLAGS
TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
flags.DEFINE_integer("num_ps", None, "Parameter servers (default 1; 0 with "
                     "--variable_update=collective_all_reduce).", lower_bound=0)
flags.DEFINE_integer("num_workers", 2, "Workers (worker 0 is the chief).", lower_bound=1)
flags.DEFINE_string("host", "127.0.0.1", "Address every task listens on.")
flags.DEFINE_integer("ps_exit_secs", 60, "How long the parameter servers get to end by "
                     "themselves after the last worker, before they are stopped.", lower_bound=1)
flags.DEFINE_integer("tail_lines", 20, "Lines of a failing task's output shown again.",
                     lower_bound=0)

_print_lock = threading.Lock()


def _say(line):
    with _print_lock:
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
        sys.stdout.flush()


def _free_ports(host, count):
    """`count` distinct ports free on `host` now (bound, then released right before the tasks
    start; a port taken in between makes that task fail with a line naming it)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


class Task:
    """One train.py process in its own process group, its output streamed with a prefix."""

    def __init__(self, name, argv):
        self.name = name
        self.tail = collections.deque(maxlen=max(FLAGS.tail_lines, 1))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, TRAIN] + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True, text=True, bufsize=1,
            errors="replace")
        self.stopped = False  # stopped by the launcher (its exit code is not the task's verdict)
        self.reader = threading.Thread(target=self._stream, daemon=True)
        self.reader.start()

    def _stream(self):
        for line in self.process.stdout:
            self.tail.append(line.rstrip("\n"))
            _say("[%s] %s" % (self.name, line.rstrip("\n")))

    def poll(self):
        return self.process.poll()

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.stopped = True
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def finish_output(self):
        self.reader.join(timeout=5)


def _stop_all(tasks, grace=10):
    """SIGTERM every running task's process group, SIGKILL what is left after `grace` s."""
    for t in tasks:
        t.stop(signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(t.poll() is None for t in tasks):
        time.sleep(0.1)
    for t in tasks:
        if t.poll() is None:
            t.stop(signal.SIGKILL)
            t.process.wait()
    for t in tasks:
        t.finish_output()


def _exit_description(code):
    return "signal %d" % -code if code < 0 else "exit code %d" % code


def variable_update(train_argv, _depth=0):
    """The --variable_update the train.py flags ask for, as absl reads them: the last one wins,
    and a --flagfile's lines count where the flagfile stands (nested flagfiles too)."""
    found = None
    for arg in train_argv:
        if arg.startswith("--flagfile=") and _depth < 10:
            path = arg[len("--flagfile="):]
            try:
                with open(path) as f:
                    lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
            except OSError as e:
                raise app.UsageError("%s: cannot read it (%s)" % (arg, e.strerror or e))
            found = variable_update(lines, _depth + 1) or found
        elif arg.startswith("--variable_update="):
            found = arg[len("--variable_update="):]
    return found


def launch(train_argv):
    collective = variable_update(train_argv) == "collective_all_reduce"
    num_ps = FLAGS.num_ps if FLAGS.num_ps is not None else (0 if collective else 1)
    if collective and num_ps:
        raise app.UsageError("--num_ps=%d: --variable_update=collective_all_reduce has no "
                             "parameter servers (use --num_ps=0)" % num_ps)
    if not collective and not num_ps:
        raise app.UsageError("--num_ps=0 needs --variable_update=collective_all_reduce in the "
                             "train.py flags")
    if any(a.split("=")[0] in ("--job_name", "--task_index", "--ps_hosts", "--worker_hosts")
           for a in train_argv):
        raise app.UsageError("the train.py flags after -- must not set --job_name, --task_index, "
                             "--ps_hosts or --worker_hosts: the launcher sets them per task")
    ports = _free_ports(FLAGS.host, num_ps + FLAGS.num_workers)
    ps_hosts = ["%s:%d" % (FLAGS.host, p) for p in ports[:num_ps]]
    worker_hosts = ["%s:%d" % (FLAGS.host, p) for p in ports[num_ps:]]
    cluster = ["--worker_hosts=" + ",".join(worker_hosts)]
    if ps_hosts:
        cluster.append("--ps_hosts=" + ",".join(ps_hosts))
    _say("launch_local_cluster: %d parameter server(s) %s, %d worker(s) %s"
         % (num_ps, ",".join(ps_hosts) or "-", FLAGS.num_workers, ",".join(worker_hosts)))

    tasks = []
    interrupted = []

    def on_signal(signum, _frame):
        interrupted.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for job, count in (("ps", num_ps), ("worker", FLAGS.num_workers)):
            for i in range(count):
                tasks.append(Task("%s%d" % (job, i), list(train_argv) + cluster + [
                    "--job_name=" + job, "--task_index=%d" % i]))
        ps = [t for t in tasks if t.name.startswith("ps")]
        workers = [t for t in tasks if t.name.startswith("worker")]
        ps_deadline = None
        while True:
            if interrupted:
                _say("launch_local_cluster: %s received: stopping every task"
                     % signal.Signals(interrupted[0]).name)
                _stop_all(tasks)
                return 128 + interrupted[0]
            failed = [t for t in tasks if t.poll() not in (None, 0) and not t.stopped]
            if failed:
                bad = failed[0]
                _stop_all(tasks)
                _say("launch_local_cluster: %s failed (%s); stopped the other tasks. Its last "
                     "lines:" % (bad.name, _exit_description(bad.poll())))
                for line in list(bad.tail)[-FLAGS.tail_lines:]:
                    _say("  [%s] %s" % (bad.name, line))
                return bad.poll() if bad.poll() > 0 else 1
            if all(t.poll() == 0 for t in workers):
                if all(t.poll() is not None for t in ps):
                    break
                if ps_deadline is None:
                    ps_deadline = time.time() + FLAGS.ps_exit_secs
                elif time.time() > ps_deadline:
                    _say("launch_local_cluster: warning: parameter server(s) still running %d s "
                         "after the last worker; stopping them" % FLAGS.ps_exit_secs)
                    _stop_all(ps)
                    break
            time.sleep(0.2)
        for t in tasks:
            t.finish_output()
        _say("launch_local_cluster: every task finished; chief exit code %d"
             % workers[0].poll())
        return workers[0].poll()
    finally:
        _stop_all([t for t in tasks if t.poll() is None])
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give train.py's flags after --, e.g. -- --flagfile=... "
                             "--model_dir=...")
    return launch(argv[1:])


if __name__ == "__main__":
    app.run(main)
