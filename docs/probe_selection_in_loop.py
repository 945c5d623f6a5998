"""Time each piece of SB selection inside a real training run (see docs/performance.md).

Run: python docs/probe_selection_in_loop.py (expects the MNIST-1D cache in ./data or generates it).
"""
import time, torch, collections
torch.set_num_threads(2)
from sbbench.config import RunConfig
from sbbench.train.run import build_training, resolve_device, data_options
from sbbench.tracking import NullTracker
from sbbench.data import load_dataset
from sbbench.selection import selective_backprop as sbmod
acc = collections.defaultdict(float)
def timed(name, fn):
    def wrapper(*a, **k):
        s = time.perf_counter(); r = fn(*a, **k); acc[name] += time.perf_counter() - s; return r
    return wrapper
c = RunConfig(prime_epochs=0, epochs=3.0, eval_every_examples=10**12, device="cpu")
data = load_dataset(data_options(c))
loop = build_training(c.replace(method="sb"), NullTracker(), resolve_device("cpu"), data)
m = loop.method
m.history.add = timed("add", m.history.add)
m.history.fraction_below = timed("frac", m.history.fraction_below)
m.queue.push = timed("push", m.queue.push)
sbmod.bernoulli_keep = timed("bern", sbmod.bernoulli_keep)
sbmod.sb_probability = timed("prob", sbmod.sb_probability)
loop.score_forward = timed("score_forward", loop.score_forward)
m.select = timed("select_total", m.select)
o = loop.run()
n = 391*3
print({k: round(v/n*1e6, 1) for k, v in acc.items()}, "us per forward batch")
