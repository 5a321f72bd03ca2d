"""Image debugging: per-group scores against a direct computation of the definition, the two fixes of
NEURFLOW.md B20 (each neuron once per group, a 0.05 floor instead of 1e-6), and the strongest path."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurflow_kb import NeurFlow, NeurFlowConfig
from neurflow_kb.debug import DebugConfig, debug_image, strongest_path
from neurflow_kb.errors import UserError
from neurflow_kb.models import ModelAdapter
from neurflow_kb.viewer import CircuitView, from_circuit

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
CHAIN = ["c1", "c2", "c3", "fc"]


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([
        ("c1", nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())),
        ("c2", nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())),
        ("c3", nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.ReLU())),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(16, 4))])).eval()


@pytest.fixture(scope="module")
def setup():
    model = cnn()
    adapter = ModelAdapter.from_module(model, CHAIN, name="dbg", mean=MEAN, std=STD, input_size=32,
                                       class_names=["a", "b", "c", "d"])
    g = torch.Generator().manual_seed(3)
    images = torch.randn(8, 3, 32, 32, generator=g)
    circuit = NeurFlow(NeurFlowConfig(tau=3, top_k=8, ig_steps=4, class_filter="all",
                                      granularities=(1.0, 0.5))).fit(adapter, images, 1, progress=False)
    probe = torch.randn(3, 32, 32, generator=g)
    return model, adapter, circuit, probe


def direct_pooled(model: nn.Module, crop: torch.Tensor) -> dict[str, np.ndarray]:
    """Spatially pooled outputs of c1, c2, c3 and the logits of one crop, by running the layers by hand."""
    out = {}
    x = crop.unsqueeze(0)
    for name in ("c1", "c2", "c3"):
        x = getattr(model, name)(x)
        out[name] = x.mean(dim=(2, 3))[0].numpy()
    out["fc"] = model.fc(torch.flatten(model.pool(x), 1))[0].numpy()
    return out


def test_group_scores_match_the_definition(setup) -> None:
    model, adapter, circuit, probe = setup
    view = from_circuit(circuit)
    floor = 0.05
    result = debug_image(adapter, probe, view, DebugConfig(floor=floor, threshold=0.8))
    assert len(result.scores) == len(circuit.groups)
    # crops of the circuit's own granularities (1 and 0.5 here): 1 + 3x3
    assert sorted(set(result.crops["granularity"])) == [0.5, 1.0] and len(result.crops) == 10

    with torch.no_grad():
        acts = []
        for c in result.crops.itertuples(index=False):
            crop = probe[:, c.top:c.top + c.size, c.left:c.left + c.size].unsqueeze(0)
            crop = F.interpolate(crop, size=(32, 32), mode="bilinear", align_corners=False)[0]
            acts.append(direct_pooled(model, crop))
    for g in circuit.groups.itertuples(index=False):
        members = circuit.nodes[(circuit.nodes["depth"] == g.depth) & (circuit.nodes["group"] == g.group)]
        reference = {}                                  # mu_g(n): mean over n's sub-concepts in g
        for n in sorted(set(members["neuron"])):
            reference[n] = abs(float(members[members["neuron"] == n]["activation"].mean()))
        best, best_crop = -math.inf, -1
        for i, a in enumerate(acts):
            terms = [math.log(max(max(float(a[g.layer][n]), 0.0) / reference[n], floor)) for n in reference]
            lb = sum(terms) / len(terms)
            if lb > best:
                best, best_crop = lb, i
        row = result.scores[result.scores["gid"] == f"{g.depth}/{g.group}"].iloc[0]
        assert row["neurons"] == len(reference)
        assert row["score"] == pytest.approx(math.exp(best), rel=1e-4)
        assert row["crop"] == best_crop
        assert row["fires"] == (math.exp(best) >= 0.8)
        np.testing.assert_allclose(result.crop_scores[row["gid"]][best_crop], best, rtol=1e-4, atol=1e-6)


def _view(members: list[dict]) -> CircuitView:
    groups = [{"id": "1/0", "depth": 1, "layer": "c2", "index": 0, "members": members,
                         "influence": 1.0, "labels": [], "thumbnails": []}]
    return CircuitView("t", {"run": "r"}, [{"depth": 1, "name": "c2", "channels": 12}], groups, [],
                       {"id": "class", "depth": 5, "index": 1, "name": "b"})


def test_a_neuron_counts_once_and_a_silent_one_is_floored(setup) -> None:
    model, adapter, _, probe = setup
    cfg = DebugConfig(granularities=(1.0,), floor=0.05)
    with torch.no_grad():
        a = direct_pooled(model, probe)["c2"]
    on = [int(i) for i in np.argsort(-a)[:2]]           # two active neurons
    # neuron on[0] with two sub-concepts (references 2a and 4a): it counts once, with mu = 3a
    members = [{"neuron": on[0], "subconcept": 0, "activation": 2 * a[on[0]]},
               {"neuron": on[0], "subconcept": 1, "activation": 4 * a[on[0]]},
               {"neuron": on[1], "subconcept": 0, "activation": a[on[1]]}]
    r = debug_image(adapter, probe, _view(members), cfg)
    expected = math.exp((math.log(1 / 3) + math.log(1.0)) / 2)
    assert r.scores["score"].iloc[0] == pytest.approx(expected, rel=1e-5)
    double_counted = math.exp((math.log(1 / 2) + math.log(1 / 4) + 0.0) / 3)
    assert abs(expected - double_counted) > 0.05
    # a member that does not fire at all costs log(0.05), not log(1e-6)
    silent = {"neuron": on[0], "subconcept": 0, "activation": 1e9 * a[on[0]]}   # ratio ~1e-9
    r = debug_image(adapter, probe, _view([members[2], silent]), cfg)
    assert r.scores["score"].iloc[0] == pytest.approx(math.exp((0.0 + math.log(0.05)) / 2), rel=1e-5)
    assert r.scores["score"].iloc[0] > 0.2                # the official eps would give ~0.001


def test_strongest_path_maximises_score_times_weight() -> None:
    def grp(gid: str, depth: int) -> dict:
        return {"id": gid, "depth": depth, "layer": f"L{depth}", "index": int(gid[-1]), "members": []}

    groups = [grp("2/0", 2), grp("2/1", 2), grp("1/0", 1), grp("1/1", 1)]
    pairs = [("2/0", "class", 0.6), ("2/1", "class", 0.4), ("1/0", "2/0", 0.5), ("1/0", "2/1", 0.9),
             ("1/1", "2/0", -2.0), ("1/1", "2/1", 0.1)]
    edges = [{"source": a, "target": b, "weight": w} for a, b, w in pairs]
    view = CircuitView("t", {}, [], groups, edges, {"id": "class", "depth": 3, "index": 0, "name": "x"})
    scores = {"2/0": 0.5, "2/1": 1.2, "1/0": 1.0, "1/1": 2.0}
    path = strongest_path(view, scores)
    # via 2/1: 1.0 * 0.9 * (1.2 * 0.4) = 0.432 beats via 2/0: 1.0 * 0.5 * (0.5 * 0.6) = 0.15; 1/1 reaches
    # the class only through 2/1 with 2.0 * 0.1 * 0.48 = 0.096 (its negative edge never counts)
    assert path["gid"].tolist() == ["1/0", "2/1", "class"]
    assert path["strength"].iloc[0] == pytest.approx(0.432)


def test_debug_rejects_a_circuit_of_another_model(setup) -> None:
    _, adapter, _, probe = setup
    with pytest.raises(UserError, match="channels"):
        debug_image(adapter, probe, _view([{"neuron": 99, "subconcept": 0, "activation": 1.0}]))
    with pytest.raises(UserError, match="floor"):
        DebugConfig(floor=0.0)
    with pytest.raises(UserError, match="does not exist"):
        debug_image(adapter, "/no/such/image.png", _view([]))
