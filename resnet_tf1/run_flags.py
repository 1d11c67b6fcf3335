"""The command-line flags of train.py and evaluate.py, generated from `run_config.RunParams`.

One declaration (the dataclass fields and their help text) gives the absl flags, the params
object and the `flags.txt` flagfile that reproduces a run; `--flagfile` is absl's own. Only
scripts import this module; the libraries take `RunParams`.
"""

import copy
import sys

import tensorflow as tf
from absl import flags

from resnet_tf1 import cluster as cluster_lib
from resnet_tf1 import errors, fileio, run_config

# What the scripts report as one line and exit 1 for: the project's errors (`errors.UserError`)
# and TensorFlow's, whose cause is the run's data or files. Anything else is a bug: a traceback.
EXPECTED_ERRORS = (errors.UserError, tf.errors.OpError)

FLAGS = flags.FLAGS


def define(flag_values=FLAGS):
    """Defines one absl flag per flag field of RunParams on `flag_values` (idempotent)."""
    for field in run_config.flag_fields():
        if field.name in flag_values:
            continue
        meta = field.metadata
        kwargs = dict(flag_values=flag_values)
        if meta["element"] is not None:
            flags.DEFINE_list(field.name, [str(v) for v in field.default], meta["help"], **kwargs)
        elif meta["choices"] is not None:
            flags.DEFINE_enum(field.name, field.default, list(meta["choices"]), meta["help"],
                              **kwargs)
        elif field.type is bool:
            flags.DEFINE_bool(field.name, field.default, meta["help"], **kwargs)
        elif field.type is int:
            flags.DEFINE_integer(field.name, field.default, meta["help"], **kwargs)
        elif field.type is float:
            flags.DEFINE_float(field.name, field.default, meta["help"], **kwargs)
        else:
            flags.DEFINE_string(field.name, field.default, meta["help"], **kwargs)


def define_cluster():
    """train.py's cluster flags (not in flags.txt: they say which task a process is, not what
    the run is). TF_CONFIG is the alternative to the first four."""
    if "job_name" in FLAGS:
        return
    flags.DEFINE_enum("job_name", None, list(cluster_lib.JOBS), "This process's job in a "
                      "cluster: ps (parameter server) or worker (worker 0 is the chief). Unset: "
                      "TF_CONFIG if set, else single-process training.")
    flags.DEFINE_integer("task_index", 0, "This process's index within --job_name.")
    flags.DEFINE_string("ps_hosts", None, "Comma-separated host:port of every parameter server.")
    flags.DEFINE_string("worker_hosts", None, "Comma-separated host:port of every worker.")
    flags.DEFINE_bool("sync_replicas", True, "Cluster: synchronous updates (one per step, from "
                      "the average of every worker's gradient); --nosync_replicas: each worker's "
                      "gradient is applied as it arrives.")
    flags.DEFINE_enum("variable_update", "parameter_server", list(cluster_lib.VARIABLE_UPDATES),
                      "Cluster: where variables live and how gradients meet: parameter_server "
                      "(variables on the --ps_hosts tasks) or collective_all_reduce (every "
                      "worker holds all variables; gradients meet in TensorFlow's collective "
                      "all-reduce; synchronous only; no parameter servers).")
    flags.DEFINE_integer("cluster_timeout_secs", 300, "Cluster: how long any one operation may "
                         "wait on another task (a dead parameter server or chief) before this "
                         "task fails; also the non-chief workers' wait for the chief.",
                         lower_bound=1)


def job_from_flags():
    """(cluster.ClusterConfig or None, cluster.Job or None) from the cluster flags / TF_CONFIG;
    cluster.ClusterError (one line) when they do not describe a cluster."""
    config = cluster_lib.from_flags(FLAGS.job_name, FLAGS.task_index, FLAGS.ps_hosts,
                                    FLAGS.worker_hosts, FLAGS.variable_update)
    if config is None:
        if FLAGS["variable_update"].present or FLAGS["sync_replicas"].present:
            raise cluster_lib.ClusterError("--variable_update/--sync_replicas need a cluster "
                                           "(--job_name and hosts, or TF_CONFIG)")
        return None, None
    job = None
    if config.job_name == "worker":
        job = cluster_lib.Job(config, FLAGS.variable_update, FLAGS.sync_replicas,
                              FLAGS.cluster_timeout_secs)
    return config, job


def _convert(field, values):
    element = field.metadata["element"]
    try:
        return tuple(element(v) for v in values)
    except ValueError:
        kind = {int: "integers", float: "numbers"}.get(element, "strings")
        raise errors.FlagError("--%s must be comma-separated %s: got %s"
                               % (field.name, kind, ",".join(values)))


def params_from_flags(flag_values=FLAGS):
    """RunParams from FLAGS (or parsed `flag_values`), validated; errors.FlagError naming the
    flag on a bad value."""
    return run_config.RunParams(**_field_values(flag_values)).validate()


def _field_values(flag_values):
    kwargs = {"explicit_flags": frozenset(f.name for f in run_config.flag_fields()
                                          if flag_values[f.name].present)}
    for field in run_config.flag_fields():
        value = flag_values[field.name].value
        if field.metadata["element"] is not None:
            value = _convert(field, value)
        kwargs[field.name] = value
    return kwargs


def params_from_argv(argv):
    """RunParams from a command line of run flags (e.g. ["--flagfile=f.flags",
    "--max_steps=500"]), parsed by absl on flag values of their own (so `--flagfile`, nested
    ones included, means what it means to train.py); this process's FLAGS are untouched. Not
    validated (`.validate()` does that, as train.py does). errors.FlagError for an unreadable
    flagfile, an unknown flag or a value of the wrong type."""
    values = flags.FlagValues()
    define(values)
    try:
        values(["run_flags"] + list(argv))
    except flags.Error as e:
        raise errors.FlagError("%s: %s" % (" ".join(argv), e))
    return run_config.RunParams(**_field_values(values))


def flagfile_text(params=None):
    """The effective run flags as a flagfile that reproduces the run: FLAGS, or the values of
    `params` (a validated RunParams: the model flags --init_checkpoint's record filled in, so the
    flagfile agrees with the checkpoint it names)."""
    lines = []
    for f in run_config.flag_fields():
        flag = FLAGS[f.name]
        if params is not None:
            value = getattr(params, f.name)
            if value is None:
                continue
            if f.metadata["element"] is not None:
                value = [str(v) for v in value]
            flag = copy.deepcopy(flag)
            flag.value = value
        if flag.value is not None and flag.serialize():
            lines.append(flag.serialize() + "\n")
    return "".join(lines)


def report(program, error):
    """Prints `<program>: error: <the error's first line>` to stderr; returns the exit code 1."""
    print("%s: error: %s" % (program, fileio.error_line(error)), file=sys.stderr)
    return 1
