"""Development runs of task 3 (MiniLM, 6 blocks) on --data-seed 1: gradient variants by name.
usage: dev_task3.py '{"name": {Setting kwargs}}' [max_runs] [seed]"""
import json
import sys
import time

import torch

sys.path.insert(0, 'benchmarks')
import bench_hypergrad_nets as B  # noqa: E402
from hypergrad_tasks import TASKS  # noqa: E402

torch.set_num_threads(1)
variants = json.loads(sys.argv[1])
runs = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
task = TASKS['minilm'](seed, data_seed=1, blocks=6)
run_cpu = B.run_seconds(task, 1)
LOG = []
_orig = B.tune


def _tune(*a, callback, **k):
    def cb(st, p):
        LOG.append(st)
        callback(st, p)
    return _orig(*a, callback=cb, **k)


B.tune = _tune
out = {}
for name, kw in variants.items():
    kw = dict(kw)
    method = kw.pop('method', 'implicit')
    B.SETTINGS[name] = B.Setting(method, hyper_lr=kw.pop('lr', 0.2), holdout=0.3, fractions=True,
                                 max_step=0.2, **kw)
    t0 = time.time()
    LOG.clear()
    c = B.run_gradient(task, name, seed, runs, run_cpu)
    at = {a: B.best_within(c, a, 10) for a in (1, 2, 3, 5)}
    out[name] = {"curve": c, "at": at}
    print(name, {a: v and (round(v[0], 4), round(v[1], 4)) for a, v in at.items()}, 'points', len(c),
          'vals', [round(x[1], 3) for x in c][::max(1, len(c) // 25)], f'{time.time()-t0:.0f}s', flush=True)
    for st in LOG[:: max(1, len(LOG) // 8)]:
        h = st.hparams
        l2 = torch.stack([v for k, v in h.items() if k != 'label_smoothing'])
        print('   step', st.step, 'train', st.train_steps, 'ls %.3f' % float(h['label_smoothing']),
              'l2 median %.2e min %.2e max %.2e head %.2e' % (float(l2.median()), float(l2.min()), float(l2.max()),
                                                           float(h['l2.head.weight'])),
              'val %.3f sel %.3f hg %.2e' % (st.val_loss, st.select_loss, st.hypergrad_norm), flush=True)
if len(sys.argv) > 4:
    json.dump(out, open(sys.argv[4], 'w'), indent=1)
