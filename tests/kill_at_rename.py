"""Runs a script with a SIGKILL injected just before a rename, to test the windows between an
atomic write's renames:

    python tests/kill_at_rename.py SUBSTRING scripts/convert_checkpoint.py --flag ...

The process kills itself (SIGKILL: no clean-up, no `finally`) at the first `os.rename` whose
source's name contains SUBSTRING.
"""

import os
import runpy
import signal
import sys

marker = sys.argv[1]
_rename = os.rename


def _rename_or_die(src, dst, *args, **kwargs):
    if marker in os.path.basename(os.fspath(src)):
        os.kill(os.getpid(), signal.SIGKILL)
    return _rename(src, dst, *args, **kwargs)


os.rename = _rename_or_die
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
