"""Checkpoint porting: one module per source format, each a name map plus a table of special cases.

Every `to_target` function takes the source's arrays as `{source_name: numpy array}` and returns
`Port(arrays={target_name: array}, model=ResNet kwargs, preprocessing=..., labels=...)`. Every
source array must be consumed exactly once; leftovers and gaps raise `PortError` with the names.
"""

from resnet_tf1.porting.common import Port, PortError  # noqa: F401

SOURCES = ("slim", "official", "keras", "caffe")
