"""Reading TF1 checkpoints (V1 single-file and V2 index + data) into numpy arrays."""

import os

import tensorflow as tf

from resnet_tf1.porting.common import PortError


def resolve_path(path):
    """A checkpoint prefix from a prefix, a V1 file, a `.index`/`.data-*` file or a directory."""
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise PortError("checkpoint directory %s holds no 'checkpoint' state file" % path)
        return latest
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            return path[:-len(suffix)]
    if ".data-" in os.path.basename(path):
        return path[:path.rindex(".data-")]
    return path


def read(path):
    """{variable name: numpy array} of every variable in the checkpoint at `path`."""
    prefix = resolve_path(path)
    if not (os.path.exists(prefix) or os.path.exists(prefix + ".index")):
        raise PortError("checkpoint %s not found (expected a V1 file or a V2 prefix with "
                        "%s.index)" % (path, prefix))
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
        return {name: reader.get_tensor(name) for name in names}
    except (tf.errors.OpError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PortError("checkpoint %s cannot be read as a TF checkpoint: %s" % (path, first))
