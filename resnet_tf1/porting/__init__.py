"""Checkpoint porting: one module per source format, each a name map plus a table of special cases.

Every `to_target` function takes the source's arrays as `{source_name: numpy array}` and returns
`Port(arrays={target_name: array}, model=ResNet kwargs, preprocessing=..., labels=...)`. Every
source array must be consumed exactly once; leftovers and gaps raise `PortError` with the names.
Each module ends in a `FORMAT` record (reader, name map, source files, reference model); `FORMATS`
is the one list of them.
"""

from resnet_tf1.porting import caffe, keras, official, slim, tensorpack, torchvision
from resnet_tf1.porting.common import Port, PortError, SourceFormat  # noqa: F401

FORMATS = {m.FORMAT.name: m.FORMAT for m in (slim, official, keras, caffe, torchvision, tensorpack)}
SOURCES = tuple(FORMATS)


def source_format(name):
    """The `SourceFormat` record of `name`; PortError naming the choices otherwise."""
    if name not in FORMATS:
        raise PortError("unknown source %r: expected one of %s" % (name, ", ".join(SOURCES)))
    return FORMATS[name]
