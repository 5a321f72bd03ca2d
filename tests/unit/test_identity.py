"""Identity from content: weights by a hash of their tensors (a file's hash cached by path, size and
mtime), custom modules by a given name or an architecture hash, circuit keys that change with every input
that changes a circuit, and user-given layer chains verified before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from artifact_helpers import CHAIN, SMALL, SMALL_CLI, world_circuit, world_images
from torch import nn

from neurflow_kb import Circuit, NeurFlow, NeurFlowConfig
from neurflow_kb.errors import UserError
from neurflow_kb.models import ModelAdapter, as_adapter, get_adapter
from neurflow_kb_dev.cli_runs import invoke, one_line_error

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEURFLOW_KB_CACHE", str(folder))
    return folder


def _save_world_weights(path: Path, seed: int) -> Path:
    torch.save(get_adapter("world", weights="random", seed=seed).model.state_dict(), path)
    return path


def _age(path: Path, seconds: float = 60.0) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


# -- weights ---------------------------------------------------------------------------------------

def test_a_weights_file_is_identified_by_its_tensors(tmp_path: Path, private_cache: Path) -> None:
    a = _save_world_weights(tmp_path / "a.pth", seed=1)
    copy = tmp_path / "renamed-copy.pt"
    copy.write_bytes(a.read_bytes())
    first = get_adapter("world", weights=str(a))
    assert first.weights.startswith("sha256:") and first.weights_source == str(a)
    assert get_adapter("world", weights=str(copy)).weights == first.weights     # the name does not matter
    _save_world_weights(a, seed=2)                                          # same path, other tensors
    assert get_adapter("world", weights=str(a)).weights != first.weights
    same_tensors = get_adapter("world", weights="random", seed=2)
    assert same_tensors.weights == get_adapter("world", weights=str(a)).weights


def test_the_file_hash_is_cached_by_path_size_and_mtime(tmp_path: Path, private_cache: Path) -> None:
    path = _save_world_weights(tmp_path / "w.pth", seed=1)
    _age(path)
    real = get_adapter("world", weights=str(path)).weights
    cache = private_cache / "weights-ids.json"
    entries = json.loads(cache.read_text())
    assert [e["id"] for e in entries.values()] == [real]
    # a second run takes the id from the cache instead of hashing: prove it with a planted id
    entry = entries[str(path.resolve())]
    entry["id"] = "sha256:00000000feedbeef"
    cache.write_text(json.dumps(entries))
    assert get_adapter("world", weights=str(path)).weights == "sha256:00000000feedbeef"
    # ... and never once the file changed (new mtime), nor when it changed just before it was hashed
    _save_world_weights(path, seed=3)
    fresh = get_adapter("world", weights=str(path)).weights
    assert fresh not in (real, "sha256:00000000feedbeef")
    racy = json.loads(cache.read_text())
    racy[str(path.resolve())]["id"] = "sha256:00000000feedbeef"
    cache.write_text(json.dumps(racy))
    assert get_adapter("world", weights=str(path)).weights == fresh     # written < 2 s before hashing


@pytest.mark.slow          # two ingests
def test_ingest_recomputes_after_the_weights_file_changed(tmp_path: Path) -> None:
    images = world_images(tmp_path / "images")
    weights = _save_world_weights(tmp_path / "weights.pth", seed=1)
    args = ["ingest", "world", "--weights", str(weights), "--classes", "0", "--images", str(images),
            "--store", str(tmp_path / "kb.lbug"), "--artifacts", str(tmp_path / "arts"), *SMALL_CLI]
    first = invoke(args)
    assert first.exit_code == 0, first.output
    assert "written class 0" in first.stdout
    _save_world_weights(weights, seed=2)                     # same file name, new contents
    second = invoke(args)
    assert second.exit_code == 0, second.output
    assert "reused" not in second.stdout and "written class 0" in second.stdout
    runs = [line.split("run ")[1].split(",")[0] for line in (first.stdout, second.stdout)
            for line in line.splitlines() if "class 0" in line]
    assert len(set(runs)) == 2
    from neurflow_kb.store import LadybugStore

    with LadybugStore(tmp_path / "kb.lbug", read_only=True) as store:
        models = store.run_query("MATCH (m:Model) RETURN m.key AS key ORDER BY key")["key"].tolist()
    assert len(models) == 2 and all(m.startswith("world@sha256:") for m in models)


# -- custom modules --------------------------------------------------------------------------------

def _tiny(kind: str, seed: int = 0) -> nn.Module:
    """Two small architectures with the same chain names."""
    torch.manual_seed(seed)
    mid = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()) if kind == "conv" else \
        nn.Sequential(nn.Conv2d(8, 8, 1), nn.Tanh())
    return nn.Sequential(OrderedDict([
        ("stem", nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())), ("mid", mid),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(8, 4))])).eval()


IDENTITY_IN_A_NEW_PROCESS = """
import torch, torchvision
from neurflow_kb.models import ModelAdapter
torch.manual_seed(0)
a = ModelAdapter.from_module(torchvision.models.resnet18(), ["layer4.0", "layer4.1", "fc"], input_size=64)
print(a.name, a.weights)
"""


@pytest.mark.slow          # a second process
def test_custom_modules_get_distinct_identities_stable_across_processes(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    torch.manual_seed(0)
    mobilenet = torchvision.models.mobilenet_v3_small()
    a = ModelAdapter.from_module(resnet, ["layer4.0", "layer4.1", "fc"], input_size=64)
    b = as_adapter(mobilenet, ["features.11", "features.12", "classifier.3"], input_size=64)
    assert a.name.startswith("ResNet-") and b.name.startswith("MobileNetV3-")
    assert a.name != b.name and a.weights != b.weights and "custom" not in (a.name, a.weights)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", IDENTITY_IN_A_NEW_PROCESS], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [a.name, a.weights]
    named = ModelAdapter.from_module(resnet, ["layer4.0", "layer4.1", "fc"], input_size=64, name="my-net",
                                     weights="epoch-3")
    assert (named.name, named.weights, named.weights_source) == ("my-net", a.weights, "epoch-3")
    before = named.weights
    with torch.no_grad():                               # trained in place: the id follows the tensors
        resnet.fc.bias.add_(1.0)
    assert named.weights != before and a.weights == named.weights
    with pytest.raises(UserError, match="knowledge-base keys"):
        ModelAdapter.from_module(resnet, ["layer4.1", "fc"], input_size=64, name="a/b")


def test_two_modules_fitted_into_one_store_stay_two_models(tmp_path: Path) -> None:
    from neurflow_kb.store import LadybugStore

    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    cfg = NeurFlowConfig(tau=2, top_k=4, ig_steps=4, class_filter="all", granularities=(1.0,))
    circuits = [NeurFlow(cfg).fit(_tiny(kind), x, 1, layers=["stem", "mid", "fc"], progress=False)
                for kind in ("conv", "tanh")]
    assert circuits[0].model != circuits[1].model and circuits[0].manifest["weights"] != \
        circuits[1].manifest["weights"]
    with LadybugStore(tmp_path / "kb.lbug") as store:
        store.write_circuits(circuits)
        keys = store.run_query("MATCH (m:Model) RETURN m.key AS key")["key"].tolist()
    assert len(keys) == 2


# -- circuit keys ----------------------------------------------------------------------------------

KEY_IN_A_NEW_PROCESS = "import sys; from neurflow_kb import Circuit; print(Circuit.load(sys.argv[1]).key)"


def test_the_key_changes_with_everything_that_changes_a_circuit(tmp_path: Path) -> None:
    circuit = world_circuit()
    m = circuit.manifest
    assert m["preprocess"] == get_adapter("world").preprocess.to_dict()

    def key(**changes: object) -> str:
        return Circuit(manifest=dict(m, **changes), tables=dict(circuit.tables)).key

    config = dict(m["config"])
    variants = {
        "weights": key(weights="sha256:0123456789abcdef"),
        "resize": key(preprocess=dict(m["preprocess"], resize=72)),
        "crop": key(preprocess=dict(m["preprocess"], crop=60)),
        "mean": key(preprocess=dict(m["preprocess"], mean=[0.4, 0.5, 0.5])),
        "std": key(preprocess=dict(m["preprocess"], std=[0.3, 0.25, 0.25])),
        "interpolation": key(preprocess=dict(m["preprocess"], interpolation="bicubic")),
        "chain": key(layers=["layer2", *CHAIN]),
        "data": key(data_fingerprint="0" * 64),
        "config": key(config=dict(config, tau=3)),
        "class": key(target_class=1),
    }
    assert len(set(variants.values()) | {circuit.key}) == len(variants) + 1
    assert key(config=dict(config, device="cuda", batch_size=7)) == circuit.key   # execution only
    art = circuit.save(tmp_path / "art")
    out = subprocess.run([sys.executable, "-c", KEY_IN_A_NEW_PROCESS, str(art)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == circuit.key


# -- layer chains ----------------------------------------------------------------------------------

class SkipAround(nn.Module):
    """`upper` sees `stem`'s output twice: through `lower`, and around it (a skip connection)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.lower = nn.Conv2d(6, 6, 3, padding=1)
        self.upper = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        u = torch.relu(self.upper(torch.relu(self.lower(s)) + s))
        return self.fc(u.mean(dim=(2, 3)))


def test_a_chain_with_a_skip_around_the_lower_layer_is_refused_before_any_work() -> None:
    model = SkipAround()
    bad = ["lower", "upper", "fc"]
    calls: list[int] = []
    model.upper.register_forward_hook(lambda *_: calls.append(1))
    closed = ["stem", "upper", "fc"]
    for build in (lambda: ModelAdapter.from_module(model, bad, input_size=16),
                  lambda: as_adapter(model, bad, input_size=16),
                  lambda: as_adapter(ModelAdapter.from_module(model, closed, input_size=16), bad)):
        with pytest.raises(UserError, match="lower -> upper") as err:
            build()
        assert "\n" not in str(err.value)
    images = torch.randn(200, 3, 16, 16)
    calls.clear()
    with pytest.raises(UserError, match="lower -> upper"):
        NeurFlow(NeurFlowConfig(**SMALL)).fit(model, images, 0, layers=bad, progress=False)
    assert len(calls) <= 12                          # a few probe passes, never the 200 images
    ok = ModelAdapter.from_module(model, closed, input_size=16)   # a closed chain
    assert ok.check_chain() <= 1e-5


def test_cli_layers_with_a_skip_are_refused_in_one_line(tmp_path: Path) -> None:
    images = world_images(tmp_path / "images")
    out = tmp_path / "out"
    r = invoke(["circuit", "--model", "world", "--images", str(images), "--class", "0", "--out", str(out),
                *SMALL_CLI[:-2], "--layers", "layer1.bn2,layer2,fc"])
    one_line_error(r, "layer1.bn2 -> layer2")
    assert not out.exists()
    with pytest.raises(UserError, match="layer1.bn2 -> layer2"):
        get_adapter("world", layers=["layer1.bn2", "layer2", "fc"])
    assert get_adapter("world", layers=CHAIN).layers == CHAIN
