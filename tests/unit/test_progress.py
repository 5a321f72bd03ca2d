"""Progress inside a layer: IG reports finished rows chunk by chunk, and a fit shows a node bar per layer
(with tqdm's rate and ETA) that reaches the layer's node count."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from test_engine import CHAIN, adapter_for, ig_rows, images, small_cnn

from neurflow_kb import NeurFlow, NeurFlowConfig
from neurflow_kb.engine.ig import integrated_gradients, per_neuron_integrated_gradients


@pytest.mark.parametrize("share_forward", [True, False])
def test_integrated_gradients_reports_finished_rows(share_forward) -> None:
    adapter, maps, rows, targets = ig_rows()
    seen: list[int] = []
    plain = integrated_gradients(adapter, "block1", "down", maps, rows, targets, steps=6, batch_size=9,
                                 share_forward=share_forward)
    watched = integrated_gradients(adapter, "block1", "down", maps, rows, targets, steps=6, batch_size=9,
                                   share_forward=share_forward, progress=seen.append)
    assert torch.equal(plain.attributions, watched.attributions)      # watching changes nothing
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1] == len(rows) and seen[0] < len(rows)
    per_target: list[int] = []
    per_neuron_integrated_gradients(adapter, "block1", "down", maps, rows, targets, steps=6, batch_size=9,
                                    progress=per_target.append)
    assert per_target == sorted(per_target) and per_target[-1] == len(rows)


def test_fit_shows_a_node_bar_per_layer(capsys, monkeypatch) -> None:
    import neurflow_kb.engine.neurflow as engine

    # draw every update (tqdm otherwise skips those within 0.1 s of the last one)
    monkeypatch.setattr(engine, "tqdm", functools.partial(engine.tqdm, mininterval=0, miniters=1))
    adapter = adapter_for(small_cnn(), CHAIN)
    cfg = NeurFlowConfig(tau=3, top_k=6, ig_steps=4, class_filter="all", ig_batch_size=8)
    circuit = NeurFlow(cfg).fit(adapter, images(), 2, progress=True)
    err = capsys.readouterr().err
    for depth in range(1, len(CHAIN)):
        layer = CHAIN[depth]
        nodes = circuit.nodes[circuit.nodes.depth == depth]["neuron"].nunique()
        finals = re.findall(rf"  {re.escape(layer)}: 100%\|[^|]*\| (\d+)/(\d+) \[[^\]]*node", err)
        assert finals and finals[-1] == (str(nodes), str(nodes)), (layer, err[-2000:])
        steps = re.findall(rf"  {re.escape(layer)}: +\d+%\|[^|]*\| (\d+)/{nodes} ", err)
        assert len({int(s) for s in steps}) >= 2                      # it moved within the layer
