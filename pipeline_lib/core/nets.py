"""Networks: MLPs, the unconditional GFlowNet, the outcome-conditioned GFlowNet and RND."""
from __future__ import annotations

import copy
from contextlib import contextmanager
from itertools import islice
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

CONDITIONING = ("concat", "product", "pairs")
# an OC-GFN's outcome embedding, its share of the trunk's first layer, and that layer's weight by input part
OutcomePart = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]
NEG_INF = -1e9  # finite "minus infinity" so masked log-softmax never produces NaN gradients


class MLP(nn.Sequential):
    """A stack of Linear layers, each optionally followed by a LeakyReLU (nn.Sequential's parameters and state-dict
    keys), whose forward calls the layers' functions directly: a module call costs several microseconds of Python,
    as much as a small layer's product, and a rollout calls the network once per step at small batches (a 2 x 256
    MLP at batch 64: about a tenth of its forward). ``start`` skips the first layers (the OC-GFN applies the trunk's
    first part by part). Under ``taped`` it keeps what it computes, and later replays it with its gradient."""

    tape: "Tape | None" = None

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        if self.tape is None or start:
            return self._run(x, start)
        if self.tape.replaying:
            return self.tape.replay(self, x)
        outputs = self._run(x, 0, keep=True)
        self.tape.record(self, outputs)
        return outputs[-1]

    def _run(self, x: torch.Tensor, start: int, keep: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """The output, or with ``keep`` each Linear's output (after its LeakyReLU where it has one)."""
        kept = []
        for layer in islice(self._modules.values(), start, None):
            if type(layer) is nn.Linear:  # its parameters read off its dict: Module.__getattr__ costs a microsecond
                params = layer._parameters
                x = F.linear(x, params["weight"], params["bias"])
                if keep:
                    kept.append(x)
            elif type(layer) is nn.LeakyReLU:
                x = F.leaky_relu(x, layer.negative_slope)
                if keep:
                    kept[-1] = x
            else:
                x = layer(x)
        return kept if keep else x

    def layers(self) -> list[tuple[nn.Linear, float | None]]:
        """Each Linear with the slope of the LeakyReLU after it (None: none); what a replay differentiates."""
        out: list[tuple[nn.Linear, float | None]] = []
        for layer in self:
            if type(layer) is nn.Linear and layer.bias is not None:
                out.append((layer, None))
            elif type(layer) is nn.LeakyReLU and layer.negative_slope >= 0 and out and out[-1][1] is None:
                out[-1] = (out[-1][0], layer.negative_slope)
            else:
                raise ValueError(f"taped: an MLP of Linear layers with biases, each followed by at most one "
                                 f"LeakyReLU of slope >= 0, was expected; got {layer}")
        return out


class Tape:
    """What a model's MLPs computed while a rollout sampled from it without autograd (one entry per MLP call, in
    call order), so that the loss gets the same outputs, stacked, with their gradient through one backward pass
    over all rows: no second forward pass, and none of the per-step graphs whose small products and autograd
    records cost a small-batch step more than the network itself."""

    rows_per_block = 256  # calls are joined into blocks of about this many rows, and differentiated block by block

    def __init__(self) -> None:
        self.calls: dict[int, list[list[torch.Tensor]]] = {}
        self.replaying = False

    def record(self, mlp: MLP, outputs: list[torch.Tensor]) -> None:
        self.calls.setdefault(id(mlp), []).append(outputs)

    def replay(self, mlp: MLP, x: torch.Tensor) -> torch.Tensor:
        """``mlp``'s recorded outputs, stacked over its calls, as a function of its parameters and of ``x`` (the
        stacked inputs, recomputed by the caller: the same values, with their own graph where they have one).
        Blocks of a few hundred rows rather than one stack of all: a large tensor allocated afresh each step costs
        its page faults (on a virtual machine up to several times its arithmetic), while blocks of this size come
        back from the allocator's free lists."""
        calls = self.calls.pop(id(mlp), None)
        if not calls:
            raise ValueError("taped: replaying an MLP that recorded nothing (call it the same way as while sampling)")
        blocks, group, rows = [], [], 0
        for call in calls:
            group.append(call)
            rows += len(call[-1])
            if rows >= self.rows_per_block or call is calls[-1]:
                blocks.append(group[0] if len(group) == 1 else
                              [torch.cat([c[i] for c in group]) for i in range(len(call))])
                group, rows = [], 0
        if sum(len(block[-1]) for block in blocks) != len(x):
            raise ValueError(f"taped: {len(x)} rows replayed for {sum(len(c[-1]) for c in calls)} recorded; replay the "
                             "states the rollout evaluated, in its order (step by step, running rows ascending)")
        return _Replayed.apply(x, mlp, blocks, *mlp.parameters())


class _Replayed(torch.autograd.Function):
    """An MLP's output that was already computed (``Tape.replay``), with the gradient of its backward pass, taken
    block by block."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mlp: MLP, blocks: list[list[torch.Tensor]], *params: torch.Tensor
                ) -> torch.Tensor:
        ctx.mlp, ctx.blocks = mlp, blocks
        ctx.save_for_backward(x)
        return torch.cat([block[-1] for block in blocks])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        layers = ctx.mlp.layers()
        weight_grads = [torch.zeros_like(linear.weight) for linear, _ in layers]
        bias_grads = [torch.zeros_like(linear.bias) for linear, _ in layers]
        x_grad = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        lo = 0
        for outputs in ctx.blocks:
            hi = lo + len(outputs[-1])
            g, inputs = grad[lo:hi], [x[lo:hi], *outputs[:-1]]
            for i in reversed(range(len(layers))):
                linear, slope = layers[i]
                if slope is not None:  # the kept output is after the LeakyReLU, of the same sign as before it
                    g = torch.ops.aten.leaky_relu_backward(g, outputs[i], slope, True)
                weight_grads[i].addmm_(g.t(), inputs[i])
                bias_grads[i] += g.sum(0)
                if i:
                    g = g @ linear.weight
                elif x_grad is not None:
                    torch.mm(g, linear.weight, out=x_grad[lo:hi])
            lo = hi
        params = [grad for pair in zip(weight_grads, bias_grads) for grad in pair]
        return (x_grad, None, None, *params)


@contextmanager
def taped(model: nn.Module) -> Iterator[Tape]:
    """Every MLP of ``model`` records its outputs until ``tape.replaying`` is set, then replays them (``Tape``)."""
    tape = Tape()
    mlps = [m for m in model.modules() if isinstance(m, MLP)]
    for m in mlps:
        m.layers()  # an MLP the replay cannot differentiate is refused before any work
        m.tape = tape
    try:
        yield tape
    finally:
        for m in mlps:
            m.tape = None


def mlp(n_in: int, hidden: int, layers: int, n_out: int) -> MLP:
    """``layers`` hidden layers of width ``hidden`` with LeakyReLU, then a linear head."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LeakyReLU()]
    mods.append(nn.Linear(hidden if layers else n_in, n_out))
    return MLP(*mods)


def embedding(n_in: int, hidden: int) -> MLP:
    """One Linear layer and its LeakyReLU: the OC-GFN's state, outcome and pair embeddings."""
    return MLP(nn.Linear(n_in, hidden), nn.LeakyReLU())


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the valid entries of ``mask``; invalid entries get NEG_INF."""
    return torch.log_softmax(torch.where(mask, logits, NEG_INF), dim=-1)


def uniform_log_pb(back_mask: torch.Tensor) -> torch.Tensor:
    """log P_B(s|s') of the uniform backward policy, per valid parent: -log #parents."""
    return -back_mask.sum(-1).clamp(min=1).float().log()


class GFlowNet(nn.Module):
    """Unconditional DB GFlowNet: log F(s), P_F logits and (optionally learned) P_B logits."""

    def __init__(self, feature_dim: int, n_actions: int, n_back: int, hidden: int, layers: int,
                 learn_pb: bool) -> None:
        super().__init__()
        self.n_actions, self.n_back, self.learn_pb = n_actions, n_back, learn_pb
        self.net = mlp(feature_dim, hidden, layers, 1 + n_actions + (n_back if learn_pb else 0))

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        out = self.net(feats)
        pb = out[:, 1 + self.n_actions:] if self.learn_pb else None
        return out[:, 0], out[:, 1:1 + self.n_actions], pb


class OutcomeConditionedGFlowNet(nn.Module):
    """OC-GFN: log F(s|y), logits of P_F(.|s,y) and P_B(.|s',y).

    The outcome has its own embedding, concatenated with the state embedding (method.md 2);
    ``conditioning='product'`` also feeds their elementwise product, a bilinear term that lets the
    trunk read "the outcome's token at the state's next position" directly where length x alphabet is
    small [choice]; ``'pairs'`` adds an embedding of the environment's pair features of (s, y) (where s
    sits inside y, ``env.pair_features``), which a flat pair of one-hots cannot learn on long sequences
    and on prepend-or-append generation (method.md 8).
    log F(s0|y) is fixed to 0 because sum_x R(x|y) = 1, so F(s|y) is a visit probability (descriptor
    outcomes, where it is not, learn it beside the model: ocgfn/descriptor.py). ``outcome_dim``: the outcome
    input's width where outcomes are not states (default ``feature_dim``).
    """

    def __init__(self, feature_dim: int, n_actions: int, n_back: int, hidden: int, layers: int,
                 learn_pb: bool, conditioning: str = "concat", pair_dim: int = 0,
                 outcome_dim: int | None = None) -> None:
        super().__init__()
        if conditioning not in CONDITIONING:
            raise ValueError(f"conditioning: expected one of {CONDITIONING}, got {conditioning!r}")
        if (conditioning == "pairs") != (pair_dim > 0):
            raise ValueError(f"conditioning {conditioning!r} with pair_dim={pair_dim}: pair features are "
                             "given exactly when conditioning is 'pairs'")
        self.n_actions, self.n_back, self.learn_pb = n_actions, n_back, learn_pb
        self.arch = {"feature_dim": feature_dim, "n_actions": n_actions, "n_back": n_back, "hidden": hidden,
                     "layers": layers, "learn_pb": learn_pb, "conditioning": conditioning,
                     "pair_dim": pair_dim, "outcome_dim": outcome_dim}  # to build its twin
        self.product = conditioning in ("product", "pairs")
        self.pair_dim = pair_dim
        self.embed_state = embedding(feature_dim, hidden)
        self.embed_outcome = embedding(outcome_dim or feature_dim, hidden)
        self.embed_pair = embedding(pair_dim, hidden) if pair_dim else None
        width = (2 + self.product + bool(pair_dim)) * hidden
        self.trunk = mlp(width, hidden, layers, 1 + n_actions + (n_back if learn_pb else 0))

    def forward(self, state_feats: torch.Tensor, outcome_feats: torch.Tensor, initial: torch.Tensor,
                pair_feats: torch.Tensor | None = None, rows: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``rows``: when given, ``outcome_feats`` holds one row per outcome and state row i is conditioned
        on outcome ``rows[i]``, so what depends on y alone is computed once per outcome instead of once
        per state (a batch of trajectories visits many states per outcome)."""
        return self.conditioned(state_feats, self.outcome_part(outcome_feats), initial, pair_feats, rows)

    def outcome_part(self, outcome_feats: torch.Tensor) -> OutcomePart:
        """What depends on the outcome alone: its embedding and its share of the trunk's first layer
        (bias included); a rollout towards fixed outcomes computes it once for all its steps. Also that layer's
        weight split by input part (state, outcome, then product and pair where used), which ``conditioned``
        reads: one split per pass, whose backward assembles the weight's gradient once, where a slice per part
        allocates and zero-fills a gradient the size of the whole weight for each part (5% of a TF-Bind-8
        pre-training step)."""
        eo = self.embed_outcome(outcome_feats)
        first = self.trunk[0]
        parts = first.weight.split(eo.shape[-1], dim=1)
        return eo, F.linear(eo, parts[1], first.bias), parts

    def conditioned(self, state_feats: torch.Tensor, outcome: OutcomePart,
                    initial: torch.Tensor, pair_feats: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                    at: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The outputs from an ``outcome_part`` (rows as in ``forward``): the trunk's first layer applied
        part by part, the same numbers as on the concatenation up to float round-off. With ``at``, row i is of
        state ``at[i]``: ``state_feats`` has one row per distinct state, whose embedding and share of the first
        layer are computed once (``initial`` and ``pair_feats`` are per row)."""
        eo, pre, w = outcome
        if rows is not None:
            eo, pre = eo[rows], pre[rows]
        es = self.embed_state(state_feats)
        if at is None:
            pre = torch.addmm(pre, es, w[0].t())
        else:
            pre = pre + torch.mm(es, w[0].t())[at]
            es = es[at]
        if self.product:
            pre = torch.addmm(pre, es * eo, w[2].t())
        if self.embed_pair is not None:
            pre = torch.addmm(pre, self.embed_pair(pair_feats), w[-1].t())
        out = self.trunk(pre, start=1)
        log_flow = out[:, 0].masked_fill(initial, 0.0)
        pb = out[:, 1 + self.n_actions:] if self.learn_pb else None
        return log_flow, out[:, 1:1 + self.n_actions], pb


def oc_inputs(env, model: nn.Module, states: torch.Tensor, outcomes: torch.Tensor,
              outcome_feats: torch.Tensor | None = None, rows: torch.Tensor | None = None,
              at: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The inputs of an OC-GFN (or of a wrapper with its ``pair_dim``) for (states, outcomes) rows: the one
    place that featurises them, so every caller conditions the same way. ``outcome_feats``: precomputed.
    With ``rows``, row i goes with outcome ``rows[i]`` and the outcome features stay one row per outcome
    (for ``OutcomeConditionedGFlowNet.forward(..., rows=rows)``); with ``at``, row i is state ``at[i]`` and the
    state features stay one row per state (``conditioned(..., at=at)``)."""
    each = states if at is None else states[at]
    feats = (env.featurize(states), env.featurize(outcomes) if outcome_feats is None else outcome_feats,
             env.is_initial(each))
    if not getattr(model, "pair_dim", 0):
        return feats
    return (*feats, env.pair_features(each, outcomes if rows is None else outcomes[rows]))


class OutcomeFree(nn.Module):
    """An unconditional GFlowNet made of an OC-GFN's networks, for fine-tuning its weights on a reward:
    the outcome input becomes one learned embedding (initialised from ``outcome_embedding``, e.g. the
    mean over outcomes) and log F gains a learned offset log Z, since the OC-GFN's F(s0|y) is 1 while an
    unconditional F(s0) is Z. A pair-conditioned model's pair input, which needs y, becomes a learned vector
    too (``pair_embedding``, e.g. the mean at s0). Same outputs as ``GFlowNet``; the OC-GFN itself is
    copied, never changed."""

    def __init__(self, model: OutcomeConditionedGFlowNet, outcome_embedding: torch.Tensor,
                 pair_embedding: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_actions, self.n_back, self.learn_pb, self.product = (model.n_actions, model.n_back,
                                                                    model.learn_pb, model.product)
        self.embed_state = copy.deepcopy(model.embed_state).requires_grad_(True)
        self.trunk = copy.deepcopy(model.trunk).requires_grad_(True)
        self.outcome = nn.Parameter(outcome_embedding.detach().clone())
        self.log_z = nn.Parameter(torch.zeros((), device=outcome_embedding.device))
        if (pair_embedding is None) != (model.embed_pair is None):
            raise ValueError("pair_embedding: expected one exactly when the model is pair-conditioned")
        self.pair = None if pair_embedding is None else nn.Parameter(pair_embedding.detach().clone())

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        es = self.embed_state(feats)
        eo = self.outcome.expand_as(es)
        parts = [es, eo, es * eo] if self.product else [es, eo]
        if self.pair is not None:
            parts.append(self.pair.expand_as(es))
        out = self.trunk(torch.cat(parts, dim=-1))
        pb = out[:, 1 + self.n_actions:] if self.learn_pb else None
        return out[:, 0] + self.log_z, out[:, 1:1 + self.n_actions], pb


class RND(nn.Module):
    """Random network distillation: novelty = ||predictor(x) - target(x)||, target frozen."""

    def __init__(self, feature_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.target = mlp(feature_dim, hidden, 2, out_dim)
        self.predictor = mlp(feature_dim, hidden, 2, out_dim)
        self.target.requires_grad_(False)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Per-row prediction error (the novelty), differentiable w.r.t. the predictor."""
        return (self.predictor(feats) - self.target(feats)).norm(dim=-1)
