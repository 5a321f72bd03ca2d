"""Fidelity metrics on hand-built models whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from neurflow_kb.artifact import Circuit
from neurflow_kb.errors import UserError
from neurflow_kb.models import ModelAdapter
from neurflow_kb_dev.fidelity import (
    accuracy_with_masks,
    concept_recovery,
    core_sets,
    coverage_ceiling,
    exemplar_concepts,
    exemplar_overlap,
    group_exemplars,
    group_truth,
    ig_importance,
    keep_vectors,
    label_accuracy,
    label_evaluation,
    layer_fidelity,
    optimality,
    planted_coverage,
    predictions_with_keep,
    random_sets,
    upper_under_masks,
    weight_effect_correlation,
)


class PairNet(nn.Module):
    """feat: 6 channels, channel 2k and 2k+1 copy input channel k; fc: logit k = ch 2k + ch 2k+1 + bias.

    An image of class k has input channel k = 1 and the others 0: masking channels {2k, 2k+1} hands the
    win to the class with the largest bias, masking any other pair changes nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(3, 6, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(6, 3)
        with torch.no_grad():
            self.feat.weight.zero_()
            for k in range(3):
                self.feat.weight[2 * k, k] = 1.0
                self.feat.weight[2 * k + 1, k] = 1.0
            self.fc.weight.zero_()
            for k in range(3):
                self.fc.weight[k, 2 * k] = 1.0
                self.fc.weight[k, 2 * k + 1] = 1.0
            self.fc.bias.copy_(torch.tensor([0.0, 0.1, 0.05]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.relu(self.feat(x)))))


def _images(k: int, n: int = 8) -> torch.Tensor:
    x = torch.zeros(n, 3, 4, 4)
    x[:, k] = 1.0 + 0.1 * torch.arange(n).view(n, 1, 1).float()
    return x


@pytest.fixture()
def pair_adapter() -> ModelAdapter:
    return ModelAdapter.from_module(PairNet(), ["feat", "fc"], input_size=4)


def test_masking_the_known_channels_destroys_accuracy_and_others_do_not(pair_adapter):
    x = _images(0)
    keep = keep_vectors(6, [[0, 1], [2, 3], [4, 5], [0], []], "mask")
    hit = (predictions_with_keep(pair_adapter, x, "feat", keep) == 0).mean(1)
    assert hit.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    keep = keep_vectors(6, [[0, 1], [2, 3], [0]], "retain")
    hit = (predictions_with_keep(pair_adapter, x, "feat", keep) == 0).mean(1)
    assert hit.tolist() == [1.0, 0.0, 1.0]
    assert accuracy_with_masks(pair_adapter, x, 0, {"feat": keep_vectors(6, [[0, 1]], "mask")[0]}) == 0.0
    assert accuracy_with_masks(pair_adapter, x, 0, {"feat": keep_vectors(6, [[4, 5]], "mask")[0]}) == 1.0
    # the hooks are gone afterwards
    assert float((pair_adapter.predict(x) == 0).float().mean()) == 1.0


def test_layer_fidelity_core_vs_random(pair_adapter):
    x = _images(0)
    table = layer_fidelity(pair_adapter, x, 0, {"feat": np.array([0, 1])}, draws=300, seed=0)
    row = table.iloc[0]
    assert row["accuracy"] == 1.0 and row["core"] == 2 and row["channels"] == 6
    assert row["mask_core"] == 0.0 and row["retain_core"] == 1.0
    # a random pair kills class 0 only if it is {0, 1}: 1/15; retaining it keeps class 0 iff it holds 0 or 1
    assert row["mask_random"] == pytest.approx(14 / 15, abs=0.05)
    assert row["retain_random"] == pytest.approx(9 / 15, abs=0.08)
    assert row["multi_mask_core"] == 0.0 and row["multi_retain_core"] == 1.0
    # probabilities: with {0, 1} masked the logits are the biases, so class 0 gets exp(0) / sum
    assert row["mask_core_prob"] == pytest.approx(1 / (1 + np.exp(0.1) + np.exp(0.05)), abs=1e-5)
    assert row["retain_core_prob"] == pytest.approx(row["prob"], abs=1e-6) and row["prob"] > 0.7
    assert row["mask_random_prob"] > 0.6 > row["retain_random_prob"]
    # a wrong "core" set gets no credit
    wrong = layer_fidelity(pair_adapter, x, 0, {"feat": np.array([4, 5])}, draws=50, seed=0).iloc[0]
    assert wrong["mask_core"] == 1.0 and wrong["retain_core"] == 0.0


def test_random_sets_and_keep_vectors():
    rng = np.random.default_rng(0)
    sets = random_sets(10, 3, 50, rng, exclude=[0, 1, 2])
    assert sets.shape == (50, 3) and sets.min() >= 3
    assert all(len(set(s)) == 3 for s in sets)
    with pytest.raises(UserError, match="cannot draw"):
        random_sets(4, 3, 1, rng, exclude=[0, 1])
    with pytest.raises(UserError, match="mode"):
        keep_vectors(4, [[0]], "drop")


class LinearUp(nn.Module):
    """feat: 8 channels = ReLU(input channel 0) scaled; up: one neuron = sum_m w_m * feat_m (w known)."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(3, 8, 1, bias=False)
        self.up = nn.Conv2d(8, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.feat.weight.zero_()
            self.feat.weight[:, 0] = 1.0
            self.up.weight.zero_()
            self.up.weight[0, :, 0, 0] = torch.arange(8, 0, -1).float()    # w = 8, 7, ..., 1
            self.up.weight[1, :, 0, 0] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.up(self.feat(x)))))


@pytest.fixture()
def linear_adapter() -> ModelAdapter:
    return ModelAdapter.from_module(LinearUp(), ["feat", "up", "fc"], input_size=4)


def _crafted_maps() -> tuple[torch.Tensor, np.ndarray]:
    """20 crops of the 8-channel layer: crops 0-4 live on channels 0,1; the rest on channels 2-7."""
    maps = torch.zeros(20, 8, 2, 2)
    maps[:5, 0:2] = 3.0
    maps[5:, 2:] = torch.linspace(0.5, 1.0, 15).view(15, 1, 1, 1)
    return maps, np.arange(5)


def test_ig_importance_is_exact_on_a_linear_block(linear_adapter):
    maps, _ = _crafted_maps()
    imp = ig_importance(linear_adapter, "feat", "up", 0, maps[5:], steps=8)
    # IG of a linear map is exact: w_m * mean activation of channel m, over H*W (the engine's spatial-mean
    # convention, NEURFLOW.md step 3: completeness holds up to the 1/(HW) factor)
    expected = np.arange(8, 0, -1) * maps[5:].mean((2, 3)).mean(0).numpy() / 4
    assert np.allclose(imp, expected, rtol=1e-4)


def test_weight_effect_correlation_known_answer(linear_adapter):
    maps, ex = _crafted_maps()
    imp = ig_importance(linear_adapter, "feat", "up", 0, maps[ex], steps=8)
    assert imp[0] > imp[1] > 0 and np.allclose(imp[2:], 0)
    rows = pd.DataFrame(weight_effect_correlation(linear_adapter, "feat", "up", 0, maps, ex, imp,
                                                  sizes=(1, 3), draws=40, seed=1))
    single = rows[rows["size"] == 1].iloc[0]
    # masking one channel drops the exemplars' activation in exact proportion to its importance
    assert single["pearson_drop"] == pytest.approx(1.0, abs=1e-6)
    assert single["spearman_drop"] == pytest.approx(1.0, abs=1e-6)
    assert single["subsets"] == 8
    triple = rows[rows["size"] == 3].iloc[0]
    assert triple["pearson_drop"] > 0.99 and triple["pearson_overlap"] < -0.5


def test_optimality_core_beats_random_sets(linear_adapter):
    maps, ex = _crafted_maps()
    clean = upper_under_masks(linear_adapter, "feat", "up", 0, maps, torch.ones(1, 8))[0]
    assert set(np.argsort(-clean)[:5].tolist()) == set(ex.tolist())
    res = optimality(linear_adapter, "feat", "up", 0, maps, ex, np.array([0, 1]), draws=30, seed=0)
    assert res["overlap_core"] == 0.0 and res["overlap_random"] == 1.0 and res["gap"] == 1.0
    assert res["random_at_least_as_destructive"] == 0.0
    assert res["drop_core"] == pytest.approx(1.0) and res["drop_random"] == pytest.approx(0.0)
    bad = optimality(linear_adapter, "feat", "up", 0, maps, ex, np.array([6, 7]), draws=30, seed=0)
    assert bad["gap"] <= 0.0


def test_exemplar_overlap():
    scores = np.array([[5.0, 4, 3, 2, 1], [1.0, 2, 3, 4, 5]])
    assert exemplar_overlap(scores, np.array([0, 1])).tolist() == [1.0, 0.0]


def _toy_circuit() -> Circuit:
    layers = pd.DataFrame({"depth": [0, 1, 2], "name": ["a", "b", "fc"], "channels": [4, 4, 2]})
    # the class's core set is {1, 3, 2}, but a cap of 2 nodes per layer kept only neurons 1 and 3
    core = pd.DataFrame({"depth": [2, 2, 2, 1, 1, 1], "layer": ["fc", "fc", "fc", "b", "b", "b"],
                         "neuron": [0, 0, 0, 1, 1, 3], "lower_neuron": [1, 3, 2, 0, 2, 2],
                         "rank": [0, 1, 2, 0, 1, 0], "importance": [1.0, 0.5, 0.4, 0.3, 0.2, 0.1]})
    nodes = pd.DataFrame({"depth": [1, 1, 1], "layer": ["b"] * 3, "neuron": [1, 1, 3],
                          "subconcept": [0, 1, 0], "size": [2, 2, 2], "activation": [1.0] * 3,
                          "group": [0, 1, 1],
                          "concept_vector": [[0.0]] * 3})
    ex = pd.DataFrame({"depth": [1] * 6, "layer": ["b"] * 6, "neuron": [1, 1, 1, 1, 3, 3],
                       "subconcept": [0, 0, 1, 1, 0, 0], "rank": [0, 1, 2, 3, 0, 1],
                       "crop": [10, 11, 12, 13, 13, 14],
                       "image": [0] * 6, "granularity": [1.0] * 6, "top": [0] * 6, "left": [0] * 6,
                       "size": [4] * 6, "activation": [1.0] * 6, "representative": [True] * 6})
    return Circuit(manifest={"model": "toy", "target_class": 0},
                   tables={"layers": layers, "core": core, "nodes": nodes, "exemplars": ex})


def test_core_sets_and_group_exemplars_from_a_circuit():
    c = _toy_circuit()
    sets = core_sets(c)
    assert {k: v.tolist() for k, v in sets.items()} == {"b": [1, 3], "a": [0, 2]}
    groups = group_exemplars(c)
    assert {k: v.tolist() for k, v in groups.items()} == {(1, 0): [10, 11], (1, 1): [12, 13, 14]}


def test_concept_recovery_and_label_accuracy_known_answer():
    groups = {(1, 0): np.array([0, 1, 2, 3]), (1, 1): np.array([4, 5, 6, 7]), (2, 0): np.array([8, 9])}
    crop_concepts = {i: {"red"} for i in range(4)}                     # group (1,0) is pure red
    crop_concepts.update({i: {"grass", "red"} if i == 4 else {"grass"} for i in range(4, 8)})
    crop_concepts.update({8: {"handle"}, 9: set()})
    all_crops = range(20)                                              # 12 more crops with no concept
    table = concept_recovery(groups, crop_concepts, all_crops, ["red", "grass", "handle"], min_exemplars=3)
    red = table.set_index("concept").loc["red"]
    assert (red["depth"], red["group"], red["purity"]) == (1, 0, 1.0)
    assert red["base_rate"] == pytest.approx(5 / 20)
    assert red["gain"] == pytest.approx(1.0) and red["iou"] == pytest.approx(4 / 5)
    grass = table.set_index("concept").loc["grass"]
    assert (grass["group"], grass["purity"], grass["iou"]) == (1, 1.0, 1.0)
    handle = table.set_index("concept").loc["handle"]                  # its group is too small to count
    assert handle["purity"] == 0.0
    labels = {(1, 0): "red", (1, 1): "red", (2, 0): "handle"}
    acc = label_accuracy(labels, groups, crop_concepts, ["red", "grass", "handle", "sky"])
    # (1,0) red: right; (1,1) red shown by 1/4 only: wrong (but "any"); (2,0) handle shown by 1/2: right
    assert acc["groups"] == 3 and acc["accuracy"] == pytest.approx(2 / 3) and acc["any"] == 1.0
    assert acc["chance"] == pytest.approx((1 / 4 + 1 / 4 + 1 / 4) / 3)


def _truth_fixture() -> pd.DataFrame:
    """Three groups of a 'bee': (1,0) all yellow+striped, half with an antenna; (1,1) yellow+striped+circle
    on every crop; (2,0) mostly grass, one crop yellow."""
    groups = {(1, 0): np.array([0, 1, 2, 3]), (1, 1): np.array([4, 5]), (2, 0): np.array([6, 7, 8])}
    crop_concepts = {0: {"yellow", "striped", "antenna"}, 1: {"yellow", "striped", "antenna"},
                     2: {"yellow", "striped"}, 3: {"yellow", "striped"},
                     4: {"yellow", "striped", "circle"}, 5: {"yellow", "striped", "circle", "grass"},
                     6: {"grass"}, 7: {"grass"}, 8: {"grass", "yellow"}}
    return group_truth(groups, crop_concepts, ["circle", "yellow", "striped", "antenna", "grass", "sky"])


def test_group_truth_keeps_every_dominant_concept_and_the_purity():
    t = _truth_fixture().set_index(["depth", "group"])
    assert t.loc[(1, 0), "dominant"] == ("yellow", "striped") and t.loc[(1, 0), "purity"] == 1.0
    assert t.loc[(1, 0), "shares"]["antenna"] == 0.5
    assert t.loc[(1, 1), "dominant"] == ("circle", "yellow", "striped")
    assert t.loc[(2, 0), "dominant"] == ("grass",) and t.loc[(2, 0), "exemplars"] == 3


def test_label_evaluation_counts_a_label_right_only_against_the_groups_own_dominant_concept():
    truth = _truth_fixture()
    bee = ["circle", "yellow", "striped", "antenna"]
    labels = {(1, 0): "antenna", (1, 1): "circle", (2, 0): "yellow"}
    ev = label_evaluation(truth, labels, bee, ["grass", "sky"]).set_index(["depth", "group"])
    # antenna: shown by half of (1,0)'s crops, not its most shared concept -> wrong, but a majority
    assert not ev.loc[(1, 0), "right"] and ev.loc[(1, 0), "majority"] and ev.loc[(1, 0), "share"] == 0.5
    assert ev.loc[(1, 1), "right"] and ev.loc[(1, 1), "class_concept"]
    # 'yellow' for the grass group: a class concept, shown by one crop of three -> wrong on both counts
    assert not ev.loc[(2, 0), "right"] and not ev.loc[(2, 0), "majority"]
    grass = label_evaluation(truth, {(2, 0): "grass"}, bee, ["grass", "sky"]).iloc[0]
    assert grass["right"] and grass["background"] and grass["background_right"] and not grass["class_concept"]
    assert planted_coverage(list(labels.values()), bee) == 0.75
    assert planted_coverage(["yellow", "yellow", "grass"], bee) == 0.25


def test_coverage_ceiling_is_a_matching_of_groups_to_planted_concepts():
    truth = _truth_fixture()
    bee = ["circle", "yellow", "striped", "antenna"]
    # dominant: (1,0) -> yellow/striped, (1,1) -> circle/yellow/striped, (2,0) -> grass only: 2 of 4
    assert coverage_ceiling(truth, bee, "dominant") == 0.5
    # majority: (1,0) may also be named antenna: 2 groups can still name only 2 concepts
    assert coverage_ceiling(truth, bee, "majority") == 0.5
    assert coverage_ceiling(truth.iloc[:0], bee) == 0.0
    with pytest.raises(UserError, match="rule"):
        coverage_ceiling(truth, bee, "any")


def test_exemplar_concepts_reads_the_worlds_masks_for_each_crop():
    from neurflow_kb.world import generate, region_concepts

    batch = generate(3, seed=5, classes=["bee"])
    images = pd.DataFrame({"image": [0, 1], "source": ["tensor:2", "tensor:0"], "label": [2, 2],
                           "predicted": [2, 2]})
    ex = pd.DataFrame({"depth": [1] * 3, "layer": ["l"] * 3, "neuron": [0] * 3, "subconcept": [0] * 3,
                       "rank": [0, 1, 2],
                       "crop": [7, 8, 7], "image": [0, 1, 0], "granularity": [1.0, 0.25, 1.0],
                       "top": [0, 16, 0], "left": [0, 32, 0], "size": [64, 16, 64], "activation": [1.0] * 3,
                       "representative": [True] * 3})
    c = Circuit(manifest={"model": "world", "target_class": 2}, tables={"images": images, "exemplars": ex})
    got = exemplar_concepts(c, batch)
    assert set(got) == {7, 8}
    def shown(i: int, top: int, left: int, size: int) -> set[str]:
        return set(region_concepts(batch.concepts[i], batch.object_masks[i], batch.part_masks[i], top, left,
                                   size))

    assert got[7] == shown(2, 0, 0, 64) and got[8] == shown(0, 16, 32, 16)
    assert {"circle", "yellow", "striped"} <= got[7]
    files = images.assign(source=["a.png", "b.png"])
    bad = Circuit(manifest=c.manifest, tables={"images": files, "exemplars": ex})
    with pytest.raises(UserError, match="not an index into the fitted tensor"):
        exemplar_concepts(bad, batch)
