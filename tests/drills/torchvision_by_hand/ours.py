"""The issue-32 hand check, our side (the project's virtualenv); see README.md here."""
import os, shutil, sys, numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
DIR = os.environ.get("HAND_DIR", "/tmp/hand")
from resnet_tf1.porting import convert as convert_lib
from resnet_tf1 import export, serving
x = np.load(DIR + "/x.npy").transpose(0, 2, 3, 1)
for depth in (18, 50):
    ref = np.load(DIR + "/logits%d.npy" % depth)
    for fmt in ("zip", "legacy"):
        out = DIR + "/ported%d_%s" % (depth, fmt); shutil.rmtree(out, ignore_errors=True)
        convert_lib.convert("torchvision", DIR + "/resnet%d_%s.pth" % (depth, fmt), out)
        ours = convert_lib.run_ported(out, x)
        print("resnet%d %s: max relative logit difference vs torch %.3g, top-1 equal %s" % (
            depth, fmt, np.abs(ours - ref).max() / np.abs(ref).max(), (ours.argmax(1) == ref.argmax(1)).all()))
    exp = DIR + "/export%d" % depth; shutil.rmtree(exp, ignore_errors=True)
    rec = export.export(serving.load(out), exp, "torchvision")
    np.save(exp + "/ours_logits.npy", ours)
    print("exported", exp, rec["check"])
