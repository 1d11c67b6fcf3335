"""The project's errors: what a user can cause and fix, each shown by the scripts as one line.

Every error the library raises for a bad flag, file, directory, checkpoint or data set derives from
`UserError`; the scripts catch that (and TensorFlow's `OpError`, whose cause is the run's data or
files) and print `<program>: error: <one line>` with exit code 1. Anything else — a TypeError, a
ValueError from a wrong call, a KeyError — is a bug in this code and shows its traceback. The
bottom of the house: it imports nothing.

    UserError
      FlagError            a flag (or a params field) out of range, or flags that contradict
      FileError            a file or directory that cannot be read or written (full disk,
                           permissions); names the path
      MissingPackageError  an optional package a feature needs; names the pip command
      checkpoints.CheckpointError, porting.PortError, data.DataError, rundir.ModelDirError,
      export.ExportError, train_lib.TrainError, cluster.ClusterError, curves.CurvesError
"""


class UserError(Exception):
    """A problem with the user's input; the message is one line that names the flag, file or
    variable and what was expected."""


class FlagError(UserError):
    """A flag value outside its meaningful range, or flags that contradict each other."""


class FileError(UserError):
    """A file or directory that cannot be read or written; the message names the path."""


class MissingPackageError(UserError):
    """An optional package a feature needs is not installed; the message says how to install
    it."""
