"""TFRecord shards read with an account of every record that is skipped.

Two kinds of damage make a pipeline skip records, and TensorFlow reports neither by file:

- A record whose checksum fails (a flipped bit, a shard cut short): TensorFlow's TFRecord reader
  raises DataLossError and cannot resynchronise, so the record *and every record after it in the
  shard* are lost to an `ignore_errors()` pipeline.
- A record that parses but whose image does not decode: that one record is lost.

TF's own note of either is a C++ warning without the file name (invisible at
TF_CPP_MIN_LOG_LEVEL=2). `read()` reads each shard as its own ordered stream that ends with a
marker element; when the marker passes, the shard's numbers (records read, records decoded, bytes
read of the file's size) go to a `SkippedRecords`, which logs the file and its count and keeps
the total that the progress line and metrics.json report as `num_skipped`. For a shard that ended
early, the records it still held are counted by walking the TFRecord framing from where the
reader stopped (each record is an 8-byte length, a 4-byte checksum, the data, a 4-byte checksum).
"""

import struct
import threading

import tensorflow as tf
from absl import logging

_FRAMING = 8 + 4 + 4  # length, length checksum, data checksum


class SkippedRecords:
    """Records skipped per file, filled in while a pipeline runs; safe across reader threads.

    `total` is the number skipped so far (over all passes of a repeating pipeline);
    `files` maps each file with skips to its running total.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.total = 0
        self.files = {}

    def file_done(self, path, size, read, decoded, bytes_read):
        """Called at the end of each pass over one shard (from the pipeline, via py_function)."""
        path, size, read, decoded, bytes_read = (getattr(v, "numpy", lambda v=v: v)() for v in
                                                 (path, size, read, decoded, bytes_read))
        path = path.decode() if isinstance(path, bytes) else str(path)
        size, read, decoded, bytes_read = int(size), int(read), int(decoded), int(bytes_read)
        undecodable = read - decoded
        reasons = []
        if undecodable:
            reasons.append("%d record%s whose image does not decode"
                           % (undecodable, "" if undecodable == 1 else "s"))
        lost = 0
        if bytes_read < size:
            lost, exact = remaining_records(path, bytes_read, size)
            reasons.append(
                "a corrupt record at byte %d (checksum or length): TensorFlow's reader stops "
                "there, so it and the %s after it are not read"
                % (bytes_read, ("%d record%s" % (lost - 1, "" if lost == 2 else "s")) if exact
                   else "rest of the file (%d bytes; framing damaged, count unknown, counted "
                        "as 1)" % (size - bytes_read)))
        skipped = undecodable + lost
        if skipped:
            with self._lock:
                self.total += skipped
                self.files[path] = self.files.get(path, 0) + skipped
                total = self.total
            logging.warning("%s: skipped %d record%s (%d kept): %s; %d skipped in total so far",
                            path, skipped, "" if skipped == 1 else "s", decoded,
                            "; ".join(reasons), total)
        return 0

    def item_skipped(self, path, reason, log=True):
        """One file of a folder data set skipped (an image that does not decode)."""
        with self._lock:
            self.total += 1
            self.files[path] = self.files.get(path, 0) + 1
            total = self.total
        if log:
            logging.warning("%s: skipped: %s; %d skipped in total so far", path, reason, total)


def remaining_records(path, offset, size):
    """(records from byte `offset` to the end of the file, whether the framing reached the end
    exactly). With damaged framing the count is 1: the rest of the file as one lost record."""
    count = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset + 12 <= size:
            f.seek(offset)
            length, = struct.unpack("<Q", f.read(8))
            end = offset + _FRAMING + length
            if end > size:
                break
            count, offset = count + 1, end
    if offset == size and count:
        return count, True
    return max(count, 1), False


def read(paths, parse, skips, cycle_length=8, shuffle=False, seed=None):
    """A dataset of `parse(record)` results over the TFRecord files `paths`, interleaved.

    Args:
        parse: record -> a tuple of tensors (an image that may fail to decode, a label, ...).
        skips: a `SkippedRecords` told about every file's skips at the end of each pass.
        shuffle: shuffle the file order (each pass anew) and interleave the files in whatever
            order they are read, unless a `seed` asks for a stream that repeats.
    """
    sizes = [tf.io.gfile.stat(p).length for p in paths]
    files = tf.data.Dataset.from_tensor_slices((list(paths), tf.constant(sizes, tf.int64)))
    if shuffle:
        files = files.shuffle(len(paths), seed=seed)
    specs = _output_specs(parse)

    def one_file(path, size):
        records = tf.data.TFRecordDataset(path).ignore_errors()  # stops at a checksum error
        records = records.map(lambda r: (r, False)).concatenate(
            tf.data.Dataset.from_tensors((tf.constant(b""), True)))

        def count_read(state, element):
            record, last = element
            n, offset = state
            if_record = tf.cast(tf.logical_not(last), tf.int64)
            state = (n + if_record,
                     offset + if_record * (tf.cast(tf.strings.length(record), tf.int64) +
                                           _FRAMING))
            return state, (record, last) + state

        zero = tf.constant(0, tf.int64)
        records = records.scan((zero, zero), count_read)

        def decode(record, last, n, offset):
            # The marker is not parsed; it passes as zeros shaped like a parsed record.
            parsed = tf.cond(last, lambda: tuple(tf.zeros([d or 0 for d in s.shape], s.dtype)
                                                 for s in specs),
                             lambda: tuple(parse(record)))
            return parsed, last, n, offset

        records = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        records = records.ignore_errors()  # an image that does not decode

        def count_decoded(decoded, element):
            parsed, last, n, offset = element
            decoded = decoded + tf.cast(tf.logical_not(last), tf.int64)
            return decoded, (parsed, last, n, offset, decoded)

        records = records.scan(zero, count_decoded)

        def account(parsed, last, n, offset, decoded):
            done = tf.cond(last, lambda: tf.py_function(
                skips.file_done, [path, size, n, decoded, offset], tf.int64), lambda: zero)
            with tf.control_dependencies([done]):
                return tuple(tf.identity(t) for t in parsed), last

        records = records.map(account)
        return records.filter(lambda parsed, last: tf.logical_not(last)).map(
            lambda parsed, last: parsed)

    return files.interleave(one_file, cycle_length=min(cycle_length, len(paths)),
                            num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=not shuffle or seed is not None)


def _output_specs(parse):
    """The static shapes and dtypes `parse` returns (traced once, in a scratch graph)."""
    with tf.Graph().as_default():
        return tuple(tf.TensorSpec(t.shape, t.dtype) for t in parse(tf.constant(b"")))
