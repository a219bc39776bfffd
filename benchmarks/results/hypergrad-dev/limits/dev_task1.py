import sys, json, torch
sys.path.insert(0, 'benchmarks')
import bench_hypergrad as B
import hypergrad_online as online
from hypergrad_cost import Cost as Counter
torch.set_num_threads(1)
variants = json.loads(sys.argv[1])
for sp in (2, 3, 4, 5, 6):
    data = B.split(sp)
    probe = Counter(); B.full_run(torch.full((B.D,), 1e-3, dtype=torch.float64), data[0], Counter()); probe.start()
    for lam in (1e-5, 1e-3, 1e-1):
        B.full_run(torch.full((B.D,), lam, dtype=torch.float64), data[0], probe)
    run_evals, run_cpu = probe.evals / 3, probe.cpu / 3
    peers = json.load(open(f'benchmarks/results/hypergrad-dev/peers-split{sp}.json'))
    old = json.load(open(f'benchmarks/results/hypergrad-dev/online-split{sp}.json'))
    bestpeer = min((r['at']['50'] for r in peers['results'] if r['at'].get('50')), key=lambda x: x[0])
    line = [f'split {sp} peer@50 {bestpeer[0]:.4f}/{bestpeer[1]:.4f} old-online@5 ' + str([ (r['method'], [round(x,4) for x in r['at']['5'][:2]]) for r in old['results']])]
    for name, kw in variants.items():
        for k, v in kw.items(): setattr(online, k, v)
        r = B.run_online(data, run_evals, 5.0, run_cpu=run_cpu)
        line.append(f'{name} @5 {r["at"]["5"][0]:.4f}/{r["at"]["5"][1]:.4f}')
    print(' | '.join(line), flush=True)
