"""The command-line flags of train.py and evaluate.py, generated from `run_config.RunParams`.

One declaration (the dataclass fields and their help text) gives the absl flags, the params
object and the `flags.txt` flagfile that reproduces a run; `--flagfile` is absl's own. Only
scripts import this module; the libraries take `RunParams`.
"""

import sys

import tensorflow as tf
from absl import flags

from resnet_tf1 import fileio, run_config

# What the scripts report as one line and exit 1 for (anything else is a bug: a traceback).
# CheckpointError and DataError are ValueErrors; TrainError is a RuntimeError.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, tf.errors.OpError)

FLAGS = flags.FLAGS


def define():
    """Defines one absl flag per flag field of RunParams (idempotent)."""
    for field in run_config.flag_fields():
        if field.name in FLAGS:
            continue
        meta = field.metadata
        if meta["element"] is not None:
            flags.DEFINE_list(field.name, [str(v) for v in field.default], meta["help"])
        elif meta["choices"] is not None:
            flags.DEFINE_enum(field.name, field.default, list(meta["choices"]), meta["help"])
        elif field.type is bool:
            flags.DEFINE_bool(field.name, field.default, meta["help"])
        elif field.type is int:
            flags.DEFINE_integer(field.name, field.default, meta["help"])
        elif field.type is float:
            flags.DEFINE_float(field.name, field.default, meta["help"])
        else:
            flags.DEFINE_string(field.name, field.default, meta["help"])


def _convert(field, values):
    element = field.metadata["element"]
    try:
        return tuple(element(v) for v in values)
    except ValueError:
        kind = {int: "integers", float: "numbers"}.get(element, "strings")
        raise ValueError("--%s must be comma-separated %s: got %s"
                         % (field.name, kind, ",".join(values)))


def params_from_flags():
    """RunParams from FLAGS, validated; ValueError naming the flag on a bad value."""
    kwargs = {}
    for field in run_config.flag_fields():
        value = FLAGS[field.name].value
        if field.metadata["element"] is not None:
            value = _convert(field, value)
        kwargs[field.name] = value
    return run_config.RunParams(**kwargs).validate()


def flagfile_text():
    """The effective run flags as a flagfile that reproduces the run."""
    return "".join(FLAGS[f.name].serialize() + "\n" for f in run_config.flag_fields()
                   if FLAGS[f.name].value is not None and FLAGS[f.name].serialize())


def report(program, error):
    """Prints `<program>: error: <the error's first line>` to stderr; returns the exit code 1."""
    print("%s: error: %s" % (program, fileio.error_line(error)), file=sys.stderr)
    return 1
