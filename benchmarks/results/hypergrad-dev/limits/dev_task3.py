import sys, time, json, torch
sys.path.insert(0, 'benchmarks')
import bench_hypergrad_nets as B
from hypergrad_tasks import TASKS
torch.set_num_threads(1)
variants = json.loads(sys.argv[1])
task = TASKS['minilm'](1, data_seed=1, blocks=6)
run_cpu = 10.5
LOG = []
_orig = B.tune
def _tune(*a, callback, **k):
    def cb(st, p):
        LOG.append(st); callback(st, p)
    return _orig(*a, callback=cb, **k)
B.tune = _tune
for name, kw in variants.items():
    B.SETTINGS[name] = B.Setting("implicit", hyper_lr=kw.pop('lr', 0.2), holdout=0.3, fractions=True, **kw)
    t0 = time.time(); LOG.clear()
    c = B.run_gradient(task, name, 1, float(sys.argv[2]) if len(sys.argv) > 2 else 5.0, run_cpu)
    at = {a: B.best_within(c, a, 10) for a in (1, 2, 3, 5)}
    print(name, {a: v and (round(v[0], 4), round(v[1], 4)) for a, v in at.items()}, 'points', len(c),
          'vals', [round(x[1], 3) for x in c][:25], f'{time.time()-t0:.0f}s', flush=True)
    for st in LOG[:: max(1, len(LOG)//6)]:
        h = st.hparams
        l2 = torch.stack([v for k, v in h.items() if k != 'label_smoothing'])
        print('   step', st.step, 'train', st.train_steps, 'ls %.3f' % float(h['label_smoothing']), 'l2 median %.2e min %.2e max %.2e' % (float(l2.median()), float(l2.min()), float(l2.max())), 'val %.3f sel %.3f hg %.2e' % (st.val_loss, st.select_loss, st.hypergrad_norm), flush=True)
