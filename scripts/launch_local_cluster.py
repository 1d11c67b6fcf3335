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
The failure reported is the root one: a task killed by a signal before the tasks that then lost
it. A task's own lines (its Python log and error lines) are streamed; TensorFlow's C++ runtime
log records (`E0000 ... ring_alg.cc:291] ...` and the gRPC text under them, repeated per
collective op when a peer dies) are counted, not shown, unless --show_runtime_logs.
For N real machines, run the same train.py command on each with its own role (BUILD.md).
"""

import collections
import os
import re
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
flags.DEFINE_bool("show_runtime_logs", False, "Also stream TensorFlow's C++ runtime log records "
                  "(oneDNN / CUDA start-up notes, gRPC and collective-op errors).")

# A log record's first line: absl's and TensorFlow's C++ logging share the prefix
# "<severity><mmdd> <hh:mm:ss.micro> <thread> <file>:<line>] " (the runtime's, before absl
# initialises it, "E0000 00:00:<epoch seconds>.<micro>"); the file says whose it is.
_RECORD = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ (?P<file>\S+?):\d+\] ")
_RUNTIME_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"

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
        self.tail = collections.deque(maxlen=max(FLAGS.tail_lines, 1))  # the task's own lines
        self.runtime_tail = collections.deque(maxlen=max(FLAGS.tail_lines, 1))
        self.runtime_lines = 0
        self._in_runtime_record = False
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, TRAIN] + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True, text=True, bufsize=1,
            errors="replace")
        self.stopped = False  # stopped by the launcher (its exit code is not the task's verdict)
        self.reader = threading.Thread(target=self._stream, daemon=True)
        self.reader.start()

    def is_runtime_line(self, line):
        """Whether `line` belongs to a TensorFlow C++ runtime log record (its first line, or a
        line under it without a record prefix of its own); the program's own lines are its
        Python log records, its output and its `train: error:` line."""
        match = _RECORD.match(line)
        if match:
            self._in_runtime_record = not match.group("file").endswith(".py")
        elif line.startswith(_RUNTIME_NOTICE):
            self._in_runtime_record = True
        elif line.startswith(("train: error:", "INFO:", "WARNING:", "ERROR:", "Traceback")):
            self._in_runtime_record = False
        return self._in_runtime_record

    def _stream(self):
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if self.is_runtime_line(line):
                self.runtime_lines += 1
                self.runtime_tail.append(line)
                if not FLAGS.show_runtime_logs:
                    continue
            else:
                self.tail.append(line)
            _say("[%s] %s" % (self.name, line))

    def last_lines(self):
        """The task's own last lines (its runtime's when it printed none of its own)."""
        return list(self.tail or self.runtime_tail)[-FLAGS.tail_lines:] if FLAGS.tail_lines \
            else []

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


def _report_hidden(tasks):
    hidden = sum(t.runtime_lines for t in tasks)
    if hidden and not FLAGS.show_runtime_logs:
        _say("launch_local_cluster: %d line(s) of TensorFlow runtime logs not shown "
             "(--show_runtime_logs shows them)" % hidden)


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
                # The root failure: a task killed by a signal (the others then lost it).
                bad = min(failed, key=lambda t: (t.poll() > 0, tasks.index(t)))
                _stop_all(tasks)
                also = ["%s (%s)" % (t.name, _exit_description(t.poll())) for t in failed
                        if t is not bad]
                _say("launch_local_cluster: %s failed (%s)%s; stopped the other tasks. Its last "
                     "lines:" % (bad.name, _exit_description(bad.poll()),
                                 "; also failed: " + ", ".join(also) if also else ""))
                for line in bad.last_lines():
                    _say("  [%s] %s" % (bad.name, line))
                for t in failed:
                    if t is not bad and t.tail:
                        _say("  [%s] %s" % (t.name, t.tail[-1]))
                _report_hidden(tasks)
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
        _report_hidden(tasks)
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
