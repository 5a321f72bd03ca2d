"""Certified reduced precision and reduced steps: core sets equal to exact float32, 50 steps, on every node.

Real models with real weights (the world classifier and EfficientNet-Lite0 shipped with the package), the
exact engine as the reference, and the set logic of the certificate checked against brute force.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from neurflow_kb import NeurFlow, NeurFlowConfig
from neurflow_kb.engine.certify import probe_nodes, ranks_certain, uncertain_selection
from neurflow_kb.engine.ig import integrated_gradients
from neurflow_kb.errors import UserError
from neurflow_kb.models import get_adapter
from neurflow_kb.world import generate, world_adapter

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORLD_CHAIN = ["layer2", "layer3", "layer4", "fc"]            # three transitions
LITE0_CHAIN = ["_blocks.10", "_blocks.14", "_blocks.15", "_fc"]


def cores(nf: NeurFlow) -> dict[tuple[str, int], frozenset[int]]:
    """Core set of every node of a fitted NeurFlow, keyed by (upper layer, neuron)."""
    return {(r.upper, n): frozenset(int(m) for m in r.core[n]) for r in nf.layer_results_.values()
            for n in r.neurons}


def approximation_alone_differs(certified: NeurFlow, exact: NeurFlow) -> list[tuple[str, int]]:
    """Nodes whose core set the approximation alone (before certification) got wrong."""
    ref = {r.upper: r for r in exact.layer_results_.values()}
    wrong = []
    for r in certified.layer_results_.values():
        for n, values in r.approx_importance.items():
            top = np.argsort(-values, kind="stable")[: len(r.core[n])]
            if set(top.tolist()) != set(ref[r.upper].core[n].tolist()):
                wrong.append((r.upper, n))
    return wrong


def bound_violations(certified: NeurFlow, exact: NeurFlow) -> int:
    """(node) count where some |approximate importance - exact importance| exceeded the bound."""
    ref = {r.upper: r for r in exact.layer_results_.values()}
    return sum(int((np.abs(values - ref[r.upper].importance[n]) > r.approx_bound[n]).any())
               for r in certified.layer_results_.values() for n, values in r.approx_importance.items())


def check_certified(certified: NeurFlow, exact: NeurFlow) -> dict:
    """Assert identical core sets on every node, the bound held, the manifest counts; return them."""
    assert cores(certified) == cores(exact)
    assert bound_violations(certified, exact) == 0
    cert = certified.circuit_.manifest["certification"]
    layers = [r.upper for r in exact.layer_results_.values()]
    assert set(cert) == set(layers)
    for r in certified.layer_results_.values():
        counts = cert[r.upper]
        assert counts["nodes"] == len(r.neurons)
        exact_nodes = sum(r.exact.values())
        if counts["approximation"] == "none (exact)":        # nothing approximated in this layer
            assert counts["probe_nodes"] + counts["reevaluated"] == 0 and exact_nodes == len(r.neurons)
        else:
            assert counts["probe_nodes"] + counts["reevaluated"] == exact_nodes
        assert certified.circuit_.manifest["exact_nodes"][r.upper] == exact_nodes
    # the same nodes in the same order, sub-concepts, edges (endpoints) and neuron groups
    mine, ref = certified.circuit_, exact.circuit_
    for table, columns in (("nodes", ["depth", "neuron", "subconcept", "size", "group"]),
                           ("edges", ["depth", "neuron", "subconcept", "lower_neuron"]),
                           ("groups", ["depth", "group", "size", "n_neurons"]),
                           ("exemplars", ["depth", "neuron", "subconcept", "rank", "crop"])):
        pd.testing.assert_frame_equal(mine.tables[table][columns], ref.tables[table][columns])
    return cert


# --------------------------------------------------------------------------------------------------
# the world classifier, three transitions

WORLD_CFG = NeurFlowConfig(tau=6, top_k=16, class_filter="all")


@pytest.fixture(scope="module")
def world() -> tuple:
    adapter = world_adapter(layers=WORLD_CHAIN)
    x = generate(8, seed=0, classes=[0]).tensor()
    exact = NeurFlow(WORLD_CFG)
    exact.fit(adapter, x, 0, progress=False)
    return adapter, x, exact


@pytest.mark.slow          # three world circuits (the certified engine's unit tests stay fast)
@pytest.mark.parametrize("mode", [{"dtype": "bfloat16"}, {"strategy": "fast"}], ids=["bf16", "fast"])
def test_world_certified_core_sets_equal_exact(world, mode) -> None:
    adapter, x, exact = world
    plain = NeurFlow(WORLD_CFG, **mode)
    plain.fit(adapter, x, 0, progress=False)
    assert cores(plain) != cores(exact)             # the plain approximation changes the circuit here
    certified = NeurFlow(WORLD_CFG, certify=True, **mode)
    certified.fit(adapter, x, 0, progress=False)
    cert = check_certified(certified, exact)
    assert approximation_alone_differs(certified, exact)
    assert sum(c["reevaluated"] for c in cert.values()) >= 1
    # nodes not re-evaluated keep approximate values within their bound; exact nodes carry bound zero
    for r in certified.layer_results_.values():
        for n in r.neurons:
            assert (r.bound[n] == 0).all() == r.exact[n] or not r.bound[n].any()


@pytest.mark.slow          # two world circuits
def test_world_certified_with_node_cap_and_order(world) -> None:
    """A node cap makes the frontier a top-P selection by summed importance: certified too. With
    `certify_order` the ranks inside every core set are those of exact float32 as well."""
    adapter, x, _ = world
    cfg = NeurFlowConfig(tau=5, top_k=12, class_filter="all", max_nodes_per_layer=4)
    exact = NeurFlow(cfg)
    exact.fit(adapter, x, 0, progress=False)
    certified = NeurFlow(cfg, dtype="bfloat16", certify=True, certify_order=True)
    certified.fit(adapter, x, 0, progress=False)
    check_certified(certified, exact)
    ranked = {(r.upper, n): list(r.core[n]) for r in certified.layer_results_.values() for n in r.neurons}
    assert ranked == {(r.upper, n): list(r.core[n]) for r in exact.layer_results_.values() for n in r.neurons}
    assert (certified.circuit_.core.groupby("layer")["neuron"].nunique() <= 4).all()


@pytest.mark.slow          # a world circuit in bf16
def test_certified_approximation_is_the_plain_one(world) -> None:
    """What a certified run calls 'the approximation alone' is exactly plain bf16 on the same rows."""
    adapter, x, exact = world
    certified = NeurFlow(WORLD_CFG, dtype="bfloat16", certify=True)
    certified.fit(adapter, x, 0, progress=False)
    res = certified.layer_results_[2]
    from neurflow_kb.data import materialize, plan_crops

    plan = plan_crops(len(x), 64, WORLD_CFG.granularities, WORLD_CFG.stride_ratio)
    n = res.neurons[-1]
    crops = res.exemplars[n]
    with torch.no_grad():
        maps = adapter.activations(materialize(x, plan, crops), [res.lower])[res.lower]
    rows = torch.arange(len(crops))
    plain = integrated_gradients(adapter, res.lower, res.upper, maps, rows, torch.full_like(rows, n),
                                 dtype="bfloat16")
    np.testing.assert_array_equal(plain.attributions.double().abs().mean(0).numpy(), res.approx_importance[n])


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 with its real ImageNet weights, three transitions


@pytest.fixture(scope="module")
def lite0() -> tuple:
    from skimage import data

    adapter = get_adapter("efficientnet_lite0", layers=LITE0_CHAIN)
    photos = torch.stack([adapter.preprocess(getattr(data, name)()) for name in LITE0_PHOTOS])
    return adapter, torch.nn.functional.interpolate(photos, size=112, mode="bilinear", antialias=True)


LITE0_PHOTOS = ("chelsea", "coffee")
# Small enough for two CPU cores (118 crops at 112 px, at most 8 nodes per layer, 4 exemplars); plain bf16
# and plain fast (8 steps at the 5% completeness tolerance) each change at least one core set here.
LITE0_CFG = NeurFlowConfig(tau=8, top_k=4, class_filter="all", max_nodes_per_layer=8, fast_tolerance=0.05)


@pytest.mark.slow
def test_lite0_certified_core_sets_equal_exact(lite0) -> None:
    adapter, x = lite0
    exact = NeurFlow(LITE0_CFG)
    exact.fit(adapter, x, 2, progress=False)
    for mode in ({"dtype": "bfloat16"}, {"strategy": "fast"}):
        certified = NeurFlow(LITE0_CFG, certify=True, **mode)
        certified.fit(adapter, x, 2, progress=False)
        check_certified(certified, exact)
        assert approximation_alone_differs(certified, exact), mode


# --------------------------------------------------------------------------------------------------
# the certificate's logic, against brute force


def test_ranks_certain_matches_brute_force() -> None:
    """Certain means: no vector within the bound changes the top set; uncertain means a vector within the
    bound widened by 1e-9 does (a pair pushed to opposite ends: the test is tight up to exact ties)."""
    rng = np.random.default_rng(0)
    seen = {True: 0, False: 0}
    for _ in range(400):
        c, tau = int(rng.integers(3, 12)), int(rng.integers(1, 3))
        values = rng.random(c).round(2)                  # rounding makes exact ties common
        bound = rng.random(c) * rng.choice([0.0, 0.005, 0.05])
        ordered = bool(rng.integers(2))
        certain = ranks_certain(values, bound, tau, ordered)
        seen[certain] += 1
        top = np.argsort(-values, kind="stable")[:tau]
        for _ in range(30):
            moved = values + bound * rng.uniform(-1, 1, c)
            new = np.argsort(-moved, kind="stable")[:tau]
            if certain:
                assert set(new) == set(top) and (not ordered or list(new) == list(top))
        if not certain:
            # an adversarial vector inside the bound with a different top set or order
            found = False
            for i in range(c):
                for j in range(c):
                    if i == j:
                        continue
                    moved = values.copy()
                    moved[i], moved[j] = values[i] - bound[i] - 1e-9, values[j] + bound[j] + 1e-9
                    new = np.argsort(-moved, kind="stable")[:tau]
                    if set(new) != set(top) or (ordered and list(new) != list(top)):
                        found = True
                        break
                if found:
                    break
            assert found
    assert seen[True] > 50 and seen[False] > 50


def test_uncertain_selection_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        m = int(rng.integers(2, 9))
        totals = {i * 3: float(v) for i, v in enumerate(rng.random(m).round(2))}
        bounds = {key: float(b) for key, b in zip(totals, rng.random(m) * rng.choice([0.0, 0.01, 0.1]),
                                                  strict=True)}
        cap = int(rng.integers(1, m + 1))
        order = sorted(totals, key=lambda key: (-totals[key], key))
        chosen = set(order[:cap])
        open_ = uncertain_selection(totals, bounds, cap)
        if not open_:
            for _ in range(30):
                moved = {key: totals[key] + bounds[key] * rng.uniform(-1, 1) for key in totals}
                assert set(sorted(moved, key=lambda key: (-moved[key], key))[:cap]) == chosen
        else:
            assert set(open_) <= set(totals) and len(order) > cap


def test_probe_nodes_and_config_validation() -> None:
    spread = probe_nodes(100, 0.05, 3)
    assert len(spread) == 5 and spread[0] == 0 and spread[-1] == 99 and (np.diff(spread) > 0).all()
    assert probe_nodes(2, 0.05, 3).tolist() == [0, 1]
    assert len(probe_nodes(10, 0.0, 3)) == 3
    for bad in ({"certify_safety": 0.5}, {"certify_probe": 1.5}, {"certify_min_probe": 0},
                {"dtype": "float64"}):
        with pytest.raises(UserError):
            NeurFlowConfig(**bad)


def _synthetic(n_nodes: int, k: int, c: int, noise: float, seed: int):
    """Exact attributions, an approximation off by up to `noise` x its absolute mass, and both evaluators
    (they count the nodes they are asked for)."""
    from neurflow_kb.engine.ig import IGResult

    rng = np.random.default_rng(seed)
    exact_attr = torch.tensor(rng.normal(size=(n_nodes * k, c)) * rng.gamma(2.0, size=c), dtype=torch.float32)
    mass = exact_attr.abs() * 1.5
    approx_attr = exact_attr + noise * mass * torch.tensor(rng.uniform(-1, 1, size=exact_attr.shape),
                                                           dtype=torch.float32)
    calls = {"approx": 0, "exact": 0}

    def rows_of(nodes: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((nodes[:, None] * k + np.arange(k)).ravel())

    def make(attr: torch.Tensor, with_mass: bool, name: str):
        def evaluate(nodes: np.ndarray) -> IGResult:
            calls[name] += len(nodes)
            idx = rows_of(np.asarray(nodes))
            zeros = torch.zeros(len(idx))
            return IGResult(attr[idx], zeros, zeros, 50, mass[idx] if with_mass else None)
        return evaluate

    return make(approx_attr, True, "approx"), make(exact_attr, False, "exact"), exact_attr, calls


def test_certify_transition_recomputes_exactly_the_uncertain_nodes() -> None:
    from neurflow_kb.engine.certify import certify_transition

    k, c, tau = 6, 40, 5
    for seed in range(20):
        approx, exact, exact_attr, calls = _synthetic(30, k, c, noise=0.01, seed=seed)
        out = certify_transition(approx, exact, 30, k, tau, approximation="test")
        truth = exact_attr.double().numpy().reshape(30, k, c)
        reference = np.abs(truth).mean(1)
        got = np.abs(out.attributions).mean(1)
        for n in range(30):
            assert set(np.argsort(-got[n], kind="stable")[:tau]) == set(
                np.argsort(-reference[n], kind="stable")[:tau])
            if out.exact[n]:
                np.testing.assert_array_equal(out.attributions[n], truth[n])
        assert calls["exact"] == out.report.probe_nodes + out.report.reevaluated == out.exact.sum()
        assert out.report.probe_nodes == 3 and out.report.beta > 0
        assert (out.bound[out.exact] == 0).all()
    # an error where the approximation claims no mass at all leaves nothing bounded
    approx, exact, _, calls = _synthetic(10, k, c, noise=0.01, seed=0)

    def massless(nodes: np.ndarray):
        res = approx(nodes)
        res.scale = torch.zeros_like(res.scale)
        return res

    out = certify_transition(massless, exact, 10, k, tau, approximation="test")
    assert out.exact.all() and calls["exact"] == 10
