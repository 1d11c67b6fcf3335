"""TFRecord shards read with an account of every record that is skipped.

Two kinds of damage make a pipeline skip records, and TensorFlow reports neither by file:

- A record whose checksum fails (a flipped bit, a shard cut short): TensorFlow's TFRecord reader
  raises DataLossError and cannot resynchronise, so the record *and every record after it in the
  shard* are lost to an `ignore_errors()` pipeline.
- A record that parses but whose image does not decode: that one record is lost.

TF's own note of either is a C++ warning without the file name (invisible at
TF_CPP_MIN_LOG_LEVEL=2). `read()` reads each shard as its own ordered stream that ends with a
marker element carrying the records read and the bytes they spanned; the shuffle (of serialized
records: decoding comes after it) mixes the markers with the records, and each pass ends in a pass
marker. The records decoded are tallied per shard as they pass; at the pass marker each shard's
numbers (records read, records decoded, bytes read of the file's size) go to a `SkippedRecords`,
which logs the file and its count and keeps the total that the progress line and metrics.json
report as `num_skipped`. For a shard that ended early, the records it still held are counted by
walking the TFRecord framing from where the reader stopped (each record is an 8-byte length, a
4-byte checksum, the data, a 4-byte checksum).
"""

import itertools
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

    def pass_done(self, paths, sizes, read, decoded, bytes_read, finished):
        """Called at the end of each pass over `paths` with each file's records read, records
        decoded, bytes read and whether its reader finished (eager tensors or numpy arrays, one
        entry per path)."""
        read, decoded, bytes_read, finished = (getattr(v, "numpy", lambda v=v: v)()
                                               for v in (read, decoded, bytes_read, finished))
        for path, size, r, d, b, f in zip(paths, sizes, read, decoded, bytes_read, finished):
            if f:
                self.file_done(path, size, r, d, b)
        return 0

    def item_skipped(self, path, reason, log=True):
        """One file of a folder data set skipped (an image that does not decode)."""
        with self._lock:
            self.total += 1
            self.files[path] = self.files.get(path, 0) + 1
            total = self.total
        if log:
            logging.warning("%s: skipped: %s; %d skipped in total so far", path, reason, total)


def _record_ends(f, offset, size):
    """The end offset of each whole record of the open TFRecord file `f` from byte `offset`, read
    from the framing alone; stops before a record that runs past `size`."""
    while offset + 12 <= size:
        f.seek(offset)
        length, = struct.unpack("<Q", f.read(8))
        end = offset + _FRAMING + length
        if end > size:
            return
        yield end
        offset = end


def remaining_records(path, offset, size):
    """(records from byte `offset` to the end of the file, whether the framing reached the end
    exactly). With damaged framing the count is 1: the rest of the file as one lost record."""
    count = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        for count, offset in enumerate(_record_ends(f, offset, size), 1):
            pass
    if offset == size and count:
        return count, True
    return max(count, 1), False


# The shuffle holds serialized records, decoded only after it (as TF's official ImageNet
# pipeline does): decoded photos are 5-30x their JPEG bytes (a 12-megapixel photo is 36 MB of
# pixels), and a buffer of them took 18.9 GB for 160 phone photos (BUILD.md). The buffer is
# SHUFFLE_RECORDS records, fewer when that many would pass SHUFFLE_BYTES (~1 GiB: ImageNet's
# ~110 kB records fit 10,000; photos written at JPEG quality 100, ~1.4 MB each, fit ~770).
SHUFFLE_RECORDS = 10000
SHUFFLE_BYTES = 1 << 30
MIN_SHUFFLE_RECORDS = 256
ORDERS = ("file", "shuffled", "train")


def mean_record_bytes(path, limit=64):
    """The mean size of the first `limit` records of `path` (read from the framing, not the
    data); None for a file without one whole record."""
    with tf.io.gfile.GFile(path, "rb") as f:
        ends = list(itertools.islice(_record_ends(f, 0, tf.io.gfile.stat(path).length), limit))
    return ends[-1] / len(ends) if ends else None


def shuffle_buffer(paths, max_records=SHUFFLE_RECORDS, max_bytes=SHUFFLE_BYTES):
    """Records the shuffle of `paths` holds: `max_records`, fewer when the records (their mean
    size in the first shard with a whole record) would pass `max_bytes`; never fewer than
    MIN_SHUFFLE_RECORDS."""
    for path in paths:
        mean = mean_record_bytes(path)
        if mean:
            return int(max(MIN_SHUFFLE_RECORDS, min(max_records, max_bytes // mean)))
    return max_records


def pipeline_order(training, shuffled=False):
    """`read`'s order for a pipeline: "train" when training, else "shuffled" or "file"."""
    return "train" if training else ("shuffled" if shuffled else "file")


def read(paths, parse, skips, order="file", seed=None, cycle_length=8, buffer=None):
    """A dataset of `parse(record)` results over the TFRecord files `paths`, interleaved.

    Args:
        parse: record -> a tuple of tensors (an image that may fail to decode, a label, ...).
            It runs after the shuffle: the shuffle holds serialized records.
        skips: a `SkippedRecords` told about every file's skips at the end of each pass.
        order: "file": one pass, the files in order (`cycle_length` of them interleaved);
            "shuffled": one pass, the file order and the records shuffled once with `seed`;
            "train": shuffled anew each pass (the same sequence of passes for the same `seed`)
            and repeated forever. Without a seed, "train" interleaves the files in whatever
            order they are read.
        buffer: records the shuffle holds (default `shuffle_buffer(paths)`).
    """
    if order not in ORDERS:
        raise ValueError("order=%r: expected one of %s" % (order, ", ".join(ORDERS)))
    if order == "shuffled" and seed is None:
        raise ValueError("order='shuffled' needs a seed: the same input must give the same order")
    shuffle, again = order != "file", order == "train"
    sizes = [tf.io.gfile.stat(p).length for p in paths]
    files = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), tf.constant(list(paths)),
         tf.constant(sizes, tf.int64)))
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=again)
    specs = _output_specs(parse)
    zero = tf.constant(0, tf.int64)

    def one_file(index, path, size):
        # Each file in order, ending in a marker that carries the records read and the bytes
        # they spanned (a reader stopped by a corrupt record reads fewer than the file's size).
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
            return state, (record, index, last) + state

        return records.scan((zero, zero), count_read)

    ds = files.interleave(one_file, cycle_length=min(cycle_length, len(paths)),
                          num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=not shuffle or seed is not None)
    if shuffle:
        ds = ds.shuffle(buffer or shuffle_buffer(paths), seed=seed,
                        reshuffle_each_iteration=again)
    # The end of a pass: every file's marker and every record of the pass are before it.
    ds = ds.concatenate(tf.data.Dataset.from_tensors(
        (tf.constant(b""), tf.constant(-1, tf.int64), tf.constant(True), zero, zero)))
    if again:
        ds = ds.repeat()

    def decode(record, index, last, n, offset):
        # Markers are not parsed; they pass as zeros shaped like a parsed record.
        parsed = tf.cond(last, lambda: tuple(tf.zeros([d or 0 for d in s.shape], s.dtype)
                                             for s in specs),
                         lambda: tuple(parse(record)))
        return parsed, index, last, n, offset

    # In order (deterministic), so the pass marker stays last; a record whose image does not
    # decode is dropped here and counted at the end of the pass.
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors()
    empty = tf.zeros([len(paths)], tf.int64)

    def tally(state, element):
        # Per file: records read + 1 once its end marker has passed (0: not yet), the bytes
        # they spanned, the records decoded. A record costs one scatter-add; markers are rare.
        reads, spanned, decoded = state
        parsed, index, last, n, offset = element
        at = tf.reshape(tf.maximum(index, 0), [1, 1])

        def on_record():
            one = tf.ones([1], tf.int64)
            return (reads, spanned, tf.tensor_scatter_nd_add(decoded, at, one)), zero

        def on_file_end():
            return (tf.tensor_scatter_nd_update(reads, at, [n + 1]),
                    tf.tensor_scatter_nd_update(spanned, at, [offset]), decoded), zero

        def on_pass_end():
            done = tf.py_function(
                lambda r, d, b: skips.pass_done(paths, sizes, r - 1, d, b, r > 0),
                [reads, decoded, spanned], tf.int64)
            return (empty, empty, empty), done

        state, done = tf.cond(last, lambda: tf.cond(index >= 0, on_file_end, on_pass_end),
                              on_record)
        with tf.control_dependencies([done]):
            parsed = tuple(tf.identity(t) for t in parsed)
        return state, (parsed, tf.logical_not(last))

    def kept(parsed, keep):
        return keep

    def element(parsed, keep):
        return parsed

    ds = ds.scan((empty, empty, empty), tally)
    return ds.filter(kept).map(element)


def _output_specs(parse):
    """The static shapes and dtypes `parse` returns (traced once, in a scratch graph)."""
    with tf.Graph().as_default():
        return tuple(tf.TensorSpec(t.shape, t.dtype) for t in parse(tf.constant(b"")))
