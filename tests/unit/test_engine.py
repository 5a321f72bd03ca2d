"""The engine against Captum, a model with a known answer, and itself (determinism, strategies)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import silhouette_score
from torch import nn

from neurflow_kb import Circuit, NeurFlow, NeurFlowConfig
from neurflow_kb.data import materialize, plan_crops
from neurflow_kb.models import ModelAdapter

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def small_cnn(seed: int = 0, classes: int = 5) -> nn.Module:
    """A random-init CNN with a residual block, small enough to attribute exhaustively."""
    torch.manual_seed(seed)

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, padding=1)
            self.bn = nn.BatchNorm2d(c)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x + self.bn(self.conv(x)))

    model = nn.Sequential(OrderedDict([
        ("stem", nn.Sequential(nn.Conv2d(3, 12, 3, stride=2, padding=1), nn.ReLU())),
        ("block1", Block(12)),
        ("down", nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.ReLU())),
        ("block2", Block(16)),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(16, classes)),
    ]))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def images(n: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def adapter_for(model: nn.Module, layers: list[str], classes: int = 5) -> ModelAdapter:
    return ModelAdapter.from_module(model, layers, name="small", mean=MEAN, std=STD, input_size=32,
                                    num_classes=classes)


CHAIN = ["stem", "block1", "down", "block2", "fc"]


@pytest.fixture(scope="module")
def fitted() -> tuple[Circuit, ModelAdapter, torch.Tensor, NeurFlowConfig]:
    cfg = NeurFlowConfig(tau=4, top_k=12, class_filter="all", seed=3, ig_batch_size=97)
    adapter = adapter_for(small_cnn(), CHAIN)
    x = images()
    circuit = NeurFlow(cfg).fit(adapter, x, 2, progress=False)
    return circuit, adapter, x, cfg


class _Pooled(nn.Module):
    """Layer L as a function of layer L-1's map, pooled: what Captum attributes."""

    def __init__(self, adapter: ModelAdapter, lower: str, upper: str) -> None:
        super().__init__()
        self.adapter, self.lower, self.upper = adapter, lower, upper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter.pool(self.upper, self.adapter.run_from(self.lower, x, self.upper))


def _reference_subconcepts(feats: np.ndarray, k_max: int = 5, min_sil: float | None = 0.1) -> np.ndarray:
    """Sub-concepts with scikit-learn's Ward, the way the official code picks K (first maximum)."""
    best_score, best = -1.0, None
    for k in range(2, min(k_max, len(feats) - 1) + 1):
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(feats)
        score = silhouette_score(feats, labels)
        if score > best_score:
            best_score, best = score, labels
    if min_sil is not None and best_score < min_sil:
        return np.zeros(len(feats), dtype=int)
    return best


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs_a = {(i, j) for i in range(len(a)) for j in range(len(a)) if a[i] == a[j]}
    pairs_b = {(i, j) for i in range(len(b)) for j in range(len(b)) if b[i] == b[j]}
    return pairs_a == pairs_b


def test_batched_engine_matches_captum_per_node(fitted) -> None:
    circuit, adapter, x, cfg = fitted
    plan = plan_crops(len(x), 32, cfg.granularities, cfg.stride_ratio)
    layers = list(circuit.layers["name"])
    checked = 0
    for (depth, neuron), ex in circuit.exemplars.groupby(["depth", "neuron"]):
        upper, lower = layers[depth], layers[depth - 1]
        ex = ex.sort_values("rank")
        crops = materialize(x, plan, ex["crop"].to_numpy())
        with torch.no_grad():
            maps = adapter.activations(crops, [lower])[lower]
            pooled_lower = adapter.pool(lower, maps).double().numpy()
        ig = IntegratedGradients(_Pooled(adapter, lower, upper))
        attr = ig.attribute(maps, baselines=0.0, target=int(neuron), n_steps=50, method="gausslegendre")
        per_crop = attr.mean(dim=(2, 3)).double().numpy()          # spatial-mean attribution
        importance = np.abs(per_crop).mean(0)
        ref_core = np.argsort(-importance, kind="stable")[: cfg.tau]

        core = circuit.core[(circuit.core.depth == depth) & (circuit.core.neuron == neuron)]
        core = core.sort_values("rank")
        assert list(core["lower_neuron"]) == list(ref_core), (depth, neuron)
        rel = np.abs(core["importance"].to_numpy() - importance[ref_core]) / importance[ref_core]
        assert rel.max() <= 1e-4, (depth, neuron, rel.max())

        subs = ex["subconcept"].to_numpy()
        assert _same_partition(subs, _reference_subconcepts(pooled_lower)), (depth, neuron)

        edges = circuit.edges[(circuit.edges.depth == depth) & (circuit.edges.neuron == neuron)]
        for s, e in edges.groupby("subconcept"):
            assert np.isclose(e["weight"].abs().sum(), 1.0, atol=1e-9)
            members = subs == s
            raw = per_crop[members][:, e["lower_neuron"].to_numpy()].mean(0)
            np.testing.assert_allclose(e["weight"].to_numpy(), raw / np.abs(raw).sum(), rtol=1e-3, atol=1e-6)
        checked += 1
    assert checked == len(circuit.exemplars.groupby(["depth", "neuron"])) >= 5


def known_answer_model() -> nn.Module:
    """Class 1's logit reads channels {1, 5} of c3; those read {0, 2} and {3, 6} of c2, which read
    {1, 4} and {2, 7} of c1 respectively; every other weight on those paths is exactly zero."""
    torch.manual_seed(0)
    c1 = nn.Conv2d(3, 8, 3, padding=1)
    c2 = nn.Conv2d(8, 8, 1)
    c3 = nn.Conv2d(8, 8, 1)
    fc = nn.Linear(8, 3)
    with torch.no_grad():
        c1.bias.fill_(2.0)            # every c1 channel is active on every crop
        for conv, wiring in ((c2, {0: (1, 4), 2: (2, 7), 3: (1, 4), 6: (2, 7)}),
                             (c3, {1: (0, 2), 5: (3, 6)})):
            conv.weight.uniform_(0.05, 0.3)
            conv.bias.fill_(0.5)
            for out_ch, ins in wiring.items():
                conv.weight[out_ch].zero_()
                conv.weight[out_ch, list(ins), 0, 0] = torch.tensor([0.7, 0.4])
        fc.weight.uniform_(-0.5, 0.5)
        fc.weight[1].zero_()
        fc.weight[1, 1], fc.weight[1, 5] = 1.0, 0.6
    return nn.Sequential(OrderedDict([("c1", c1), ("r1", nn.ReLU()), ("c2", c2), ("r2", nn.ReLU()),
                                      ("c3", c3), ("r3", nn.ReLU()), ("pool", nn.AdaptiveAvgPool2d(1)),
                                      ("flat", nn.Flatten()), ("fc", fc)])).eval()


def test_known_answer_core_neurons() -> None:
    adapter = adapter_for(known_answer_model(), ["r1", "r2", "r3", "fc"], classes=3)
    circuit = NeurFlow(tau=2, top_k=10, class_filter="all").fit(adapter, images(3), 1, progress=False)
    core = circuit.core
    cores = {(int(d), int(n)): set(g["lower_neuron"]) for (d, n), g in core.groupby(["depth", "neuron"])}
    assert cores == {(3, 1): {1, 5}, (2, 1): {0, 2}, (2, 5): {3, 6},
                     (1, 0): {1, 4}, (1, 2): {2, 7}, (1, 3): {1, 4}, (1, 6): {2, 7}}


def test_save_load_roundtrip_and_determinism(fitted, tmp_path) -> None:
    circuit, adapter, x, cfg = fitted
    loaded = Circuit.load(circuit.save(tmp_path / "c"))
    assert loaded.equals(circuit) and loaded.key == circuit.key
    again = NeurFlow(cfg).fit(adapter, x, 2, progress=False)
    assert again.equals(circuit)


def test_strategies_agree(fitted) -> None:
    circuit, adapter, x, cfg = fitted
    per_neuron = NeurFlow(cfg, strategy="per_neuron").fit(adapter, x, 2, progress=False)
    a, b = circuit.core, per_neuron.core
    assert list(a["lower_neuron"]) == list(b["lower_neuron"])
    np.testing.assert_allclose(a["importance"], b["importance"], rtol=1e-5)
    fast = NeurFlow(cfg, strategy="fast", fast_tolerance=0.02).fit(adapter, x, 2, progress=False)
    assert set(fast.manifest["ig_steps"].values()) <= set(cfg.fast_steps)


def test_groups_and_influence_are_consistent(fitted) -> None:
    circuit, *_ = fitted
    groups, nodes = circuit.groups, circuit.nodes
    top = int(groups["depth"].max())
    assert np.isclose(groups[groups.depth == top]["influence"].sum(), 1.0)
    for depth, g in nodes.groupby("depth"):
        assert set(g["group"]) == set(groups[groups.depth == depth]["group"])
    ge = circuit.group_edges
    for depth in range(top, 1, -1):
        upper = groups[groups.depth == depth].set_index("group")["influence"]
        lower = groups[groups.depth == depth - 1].set_index("group")["influence"]
        e = ge[ge.depth == depth]
        expected = (e["weight"] * e["group"].map(upper)).groupby(e["lower_group"]).sum()
        np.testing.assert_allclose(lower.loc[expected.index], expected, rtol=1e-9, atol=1e-12)
    # shares: each layer's abs_share sums to 1 in a computed run; each group's is what its edges bring
    np.testing.assert_allclose(groups.groupby("depth")["abs_share"].sum(), 1.0, atol=1e-9)
    assert (groups["share"].abs() <= groups["abs_share"] + 1e-12).all()
    for depth in range(top, 1, -1):
        e = ge[ge.depth == depth]
        into = e.groupby("lower_group")["abs_share"].sum()
        lower = groups[groups.depth == depth - 1].set_index("group")["abs_share"]
        np.testing.assert_allclose(lower.loc[into.index], into, rtol=1e-9, atol=1e-12)


def test_bad_inputs_raise_user_errors() -> None:
    from neurflow_kb.errors import UserError

    adapter = adapter_for(small_cnn(), CHAIN)
    with pytest.raises(UserError, match="out of range"):
        NeurFlow(class_filter="all").fit(adapter, images(2), 9, progress=False)
    with pytest.raises(UserError, match="tau 20 exceeds"):
        NeurFlow(tau=20, class_filter="all").fit(adapter, images(2), 1, progress=False)
    with pytest.raises(UserError):
        NeurFlowConfig(tau=0)


def test_silhouette_matches_scikit_learn() -> None:
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import silhouette_samples as sk_silhouette

    from neurflow_kb.engine.clustering import silhouette_samples

    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(200):
        n = int(rng.integers(3, 60))
        points = rng.normal(size=(n, int(rng.integers(1, 30))))
        points[: n // 2] += 4 * (trial % 2)                       # separated halves in every other trial
        points[1] = points[0]                                      # a zero distance
        labels = rng.integers(0, int(rng.integers(2, 7)), size=n) * 3 + 1   # not 0..K-1, with singletons
        if not 2 <= len(np.unique(labels)) < n:
            continue
        dist = squareform(pdist(points))
        np.testing.assert_allclose(silhouette_samples(dist, labels),
                                   sk_silhouette(dist, labels, metric="precomputed"), atol=1e-12)
        checked += 1
    assert checked > 150


def test_fit_scopes_tf32_to_the_config() -> None:
    """Exact float32 switches cuDNN's default TF32 off during the fit and restores the caller's flags."""
    backends = torch.backends
    saved = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
    model = small_cnn()
    seen: list[tuple[bool, bool]] = []
    model.fc.register_forward_hook(
        lambda *_: seen.append((backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32)))
    adapter = adapter_for(model, CHAIN[-2:])
    try:
        for allow in (False, True):
            backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = not allow
            seen.clear()
            NeurFlow(NeurFlowConfig(tau=2, top_k=4, ig_steps=4, class_filter="all", allow_tf32=allow)).fit(
                adapter, images(2), 1, progress=False)
            assert seen and set(seen) == {(allow, allow)}
            assert (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32) == (not allow, not allow)
    finally:
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = saved


def ig_rows() -> tuple[ModelAdapter, torch.Tensor, torch.Tensor, torch.Tensor]:
    """IG inputs on block1 of the small CNN: the adapter, 6 exemplar maps, rows and targets of 5 target
    neurons x 4 exemplars each (exemplars shared between targets)."""
    adapter = adapter_for(small_cnn(), CHAIN)
    with torch.no_grad():
        maps = adapter.activations(images(6), ["block1"])["block1"]
    g = torch.Generator().manual_seed(0)
    rows = torch.cat([torch.randperm(6, generator=g)[:4] for _ in range(5)])
    targets = torch.arange(5).repeat_interleave(4) * 3
    return adapter, maps, rows, targets


def test_shared_forward_gives_the_rowwise_numbers() -> None:
    """Rows of one exemplar share each (exemplar, step) forward and one batched backward: bit for bit the
    numbers of one (row, step) pair at a time, at every batch size (chunks split units of many targets)."""
    from neurflow_kb.engine.ig import integrated_gradients

    adapter, maps, rows, targets = ig_rows()
    rowwise = integrated_gradients(adapter, "block1", "down", maps, rows, targets, steps=12,
                                   share_forward=False, with_scale=True)
    for batch in (7, 64, 1000):
        shared = integrated_gradients(adapter, "block1", "down", maps, rows, targets, steps=12,
                                      batch_size=batch, share_forward=True, with_scale=True)
        assert torch.equal(shared.attributions, rowwise.attributions), batch
        assert torch.equal(shared.scale, rowwise.scale), batch
        np.testing.assert_allclose(shared.delta, rowwise.delta, rtol=1e-6, atol=1e-7)
    # the absolute mass bounds the attribution: |sum_i w_i mean(x g_i)| <= sum_i w_i mean|x g_i|
    assert (rowwise.attributions.abs() <= rowwise.scale * (1 + 1e-6) + 1e-12).all()


@pytest.mark.slow          # two more fits
def test_channels_last_and_float16_run_the_same_circuit_nodes(fitted) -> None:
    circuit, adapter, x, cfg = fitted
    model = small_cnn()
    nhwc = NeurFlow(cfg, channels_last=True).fit(adapter_for(model, CHAIN), x, 2, progress=False)
    assert model.stem[0].weight.is_contiguous()          # the caller's layout is restored after the fit
    np.testing.assert_allclose(nhwc.core["importance"], circuit.core["importance"], rtol=1e-4)
    assert list(nhwc.core["lower_neuron"]) == list(circuit.core["lower_neuron"])
    half = NeurFlow(cfg, dtype="float16").fit(adapter, x, 2, progress=False)
    assert half.manifest["config"]["dtype"] == "float16" and len(half.core) > 0


@pytest.mark.slow          # three more fits
def test_error_range_pruning_is_a_core_prefix_and_certified_bf16_keeps_it(fitted) -> None:
    """Pruning keeps a prefix of the ranked core set; certified bf16 certifies the ranks (pruning masks
    core prefixes) and so prunes to exactly the float32 cores."""
    circuit, adapter, x, cfg = fitted
    pruned_cfg = NeurFlowConfig(tau=4, top_k=12, class_filter="all", seed=3, error_range=0.1)
    exact = NeurFlow(pruned_cfg)
    pruned = exact.fit(adapter, x, 2, progress=False)
    full = circuit.core.groupby(["depth", "neuron"])["lower_neuron"].apply(list)
    for key, core in pruned.core.sort_values("rank").groupby(["depth", "neuron"])["lower_neuron"]:
        assert list(core) == full[key][: len(core)]
    certified = NeurFlow(pruned_cfg, dtype="bfloat16", certify=True)
    again = certified.fit(adapter, x, 2, progress=False)
    assert list(again.core["lower_neuron"]) == list(pruned.core["lower_neuron"])
    assert list(again.core["rank"]) == list(pruned.core["rank"])
