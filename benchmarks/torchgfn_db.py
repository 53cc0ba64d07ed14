"""torchgfn's side of the throughput benchmark (run in an environment that has torchgfn).

Trains torchgfn's HyperGrid with its DB loss, the same MLP (2 x 256, LeakyReLU, one trunk for
log F and P_F), uniform P_B, batch size and threads as benchmarks.throughput. After its warm-up it
prints one JSON line, then for each number of steps it reads from stdin trains that many more steps
and prints one JSON line with their seconds per step (the benchmark interleaves these blocks with its
own); it exits at the end of stdin. Imports only torch and gfn so it runs beside torchgfn's own
dependency pins (numpy < 2).

    python torchgfn_db.py NDIM SIDE BATCH WARMUP THREADS
"""
from __future__ import annotations

import ctypes
import json
import sys
import time

import torch


def main(ndim: int, side: int, batch: int, warmup: int, threads: int) -> None:
    torch.set_num_threads(threads)
    # the allocator settings of a pipeline job (pipeline_lib.runtime.keep_freed_memory), so both sides pay alike
    try:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt(-3, 1 << 30), mallopt(-1, 1 << 30)
    except (OSError, AttributeError):
        pass
    torch.manual_seed(0)
    from gfn.estimators import DiscretePolicyEstimator, ScalarEstimator
    from gfn.gflownet import DBGFlowNet
    from gfn.gym import HyperGrid
    from gfn.preprocessors import KHotPreprocessor
    from gfn.utils.modules import MLP, DiscreteUniform

    env = HyperGrid(ndim=ndim, height=side, reward_fn_kwargs={"R0": 0.1, "R1": 0.5, "R2": 2.0},
                    validate_modes=False)
    pre = KHotPreprocessor(height=side, ndim=ndim)
    pf_module = MLP(pre.output_dim, env.n_actions, hidden_dim=256, n_hidden_layers=2, activation_fn="leaky_relu")
    logf_module = MLP(pre.output_dim, 1, hidden_dim=256, n_hidden_layers=2, activation_fn="leaky_relu",
                      trunk=pf_module.trunk)
    pf = DiscretePolicyEstimator(pf_module, env.n_actions, preprocessor=pre)
    pb = DiscretePolicyEstimator(DiscreteUniform(env.n_actions - 1), env.n_actions, preprocessor=pre,
                                 is_backward=True)
    logf = ScalarEstimator(logf_module, preprocessor=pre)
    gfn = DBGFlowNet(pf=pf, pb=pb, logF=logf)
    opt = torch.optim.Adam(gfn.parameters(), lr=1e-3)

    def step() -> None:
        traj = gfn.sample_trajectories(env, n=batch, save_logprobs=True)
        loss = gfn.loss(env, gfn.to_training_samples(traj), recalculate_all_logprobs=False)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    print(json.dumps({"library": "torchgfn", "warmed_up": warmup}), flush=True)
    for line in sys.stdin:
        steps = int(line)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        print(json.dumps({"seconds_per_step": (time.perf_counter() - start) / steps}), flush=True)


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:6]])
