"""Models by reference (`torchvision:NAME`, `timm:NAME`) end to end: derived layer chains that pass the chain
check, `circuit` and `ingest` (a recipe naming the model) into the embedded store and a query by another
spelling of the name, skip connections refused, weights read only from the local caches, timm optional."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from neurflow_kb import Circuit, queries
from neurflow_kb.errors import UserError
from neurflow_kb.models import derive_chain, get_adapter
from neurflow_kb_dev.cli_runs import invoke

#: The chains the rule derives (stage ends at 28, 14 and 7 px, then the logits).
CHAINS = {
    "torchvision:mobilenet_v3_small": ["features.3", "features.8", "features", "classifier.3"],
    "torchvision:convnext_tiny": ["features.3", "features.5", "features", "classifier.2"],
    "timm:resnet18": ["layer2", "layer3", "layer4", "fc"],
}
#: A lower layer inside a residual block: the upper layer also sees the block's input (the skip).
THROUGH_SKIP = {
    "torchvision:mobilenet_v3_small": ["features.5.block", "features.8", "classifier.3"],
    "torchvision:convnext_tiny": ["features.3.0.block", "features.5", "classifier.2"],
    "timm:resnet18": ["layer3.1.conv2", "layer4", "fc"],
}
SMALL = ["--tau", "2", "--top-k", "3", "--ig-steps", "2", "--filter", "all", "--max-nodes", "2", "--quiet"]


#: ConvNeXt-tiny (4.5 GFLOPs at 224 px) and the timm chain are checked in the slow run only.
REFS = [pytest.param(r, marks=pytest.mark.slow) if "convnext" in r or r.startswith("timm:") else r
        for r in CHAINS]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee"):
        Image.fromarray(np.ascontiguousarray(getattr(data, name)())).save(folder / f"{name}.png")
    return folder


@pytest.mark.parametrize("ref", REFS)
def test_derived_chain_passes_the_chain_check(ref):
    adapter = get_adapter(ref, weights="random")
    assert adapter.layers == CHAINS[ref]
    assert adapter.name == ref.removeprefix("torchvision:")          # the canonical name
    assert [adapter.output_shape(layer)[1] for layer in adapter.layers[:-1]] == [28, 14, 7]
    assert adapter.check_chain(probe_images=3, seed=7) <= 1e-3        # the same check a user chain gets
    assert derive_chain(adapter.model, 224, ref) == CHAINS[ref]
    assert adapter.weights.startswith("sha256:")                     # random weights: by content
    assert get_adapter(ref, weights="random", seed=1).weights != adapter.weights


@pytest.mark.parametrize("ref", REFS)
def test_chain_through_a_skip_connection_is_refused(ref):
    with pytest.raises(UserError, match="layer chain check failed") as err:
        get_adapter(ref, weights="random", layers=THROUGH_SKIP[ref])
    assert "\n" not in str(err.value)


def test_skip_chain_refused_by_the_cli_in_one_line(photos, tmp_path):
    out = tmp_path / "out"
    layers = ",".join(THROUGH_SKIP["timm:resnet18"])
    r = invoke(["circuit", "--model", "timm:resnet18", "--weights", "random", "--images", str(photos),
                "--class", "1", "--out", str(out), "--layers", layers, *SMALL])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: layer chain check failed for layer3.1.conv2")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("ref", list(CHAINS))
def test_circuit_and_ingest_by_reference(ref, photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "circuit"
    r = invoke(["circuit", "--model", ref, "--weights", "random", "--images", str(photos), "--class", "1",
                "--out", str(out), "--max-images", "1", *SMALL])
    assert r.exit_code == 0, (r.output, r.exception)
    circuit = Circuit.load(out)
    name = ref.removeprefix("torchvision:")
    assert circuit.manifest["model"] == name and circuit.manifest["layers"] == CHAINS[ref]
    assert set(circuit.groups["layer"]) == set(CHAINS[ref][1:])

    (tmp_path / "ref.toml").write_text(
        f'model = "{ref}"\nweights = "random"\n[data]\nmax_images = 1\n'
        '[neurflow]\ntau = 2\ntop_k = 3\nig_steps = 2\ngranularities = [1.0]\nclass_filter = "all"\n'
        'max_nodes_per_layer = 2\n')
    kb = tmp_path / "kb.lbug"
    r = invoke(["ingest", "ref.toml", "--classes", "goldfish", "--images", str(photos), "--store", str(kb),
                "--quiet"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "written class 1 (goldfish)" in r.stdout
    typed = ref.upper().replace("_", "-")            # another spelling of the same name
    rows = json.loads(invoke(["query", "drivers", "goldfish", "--model", typed, "--store", str(kb),
                              "--json"]).stdout)
    assert rows and {row["model"].split("@")[0] for row in rows} == {name}
    assert queries.models(kb)["model"].str.startswith(f"{name}@sha256:").all()


@pytest.mark.slow
def test_default_weights_come_only_from_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    for ref in ("torchvision:mobilenet_v3_small", "timm:resnet18"):
        with pytest.raises(UserError, match="never downloaded") as err:
            get_adapter(ref)
        assert "\n" not in str(err.value) and "--weights random" in str(err.value)
    # a checkpoint in the torch hub cache is read, and identified by its content, not by its name
    random = get_adapter("timm:resnet18", weights="random", seed=5)
    url = random.model.pretrained_cfg["url"]
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(random.model.state_dict(), cache / url.rsplit("/", 1)[1])
    cached = get_adapter("timm:resnet18")
    assert cached.weights == random.weights and cached.layers == CHAINS["timm:resnet18"]
    assert "timm pretrained" in cached.weights_source


def test_timm_missing_is_one_line(monkeypatch, photos, tmp_path):
    monkeypatch.setitem(sys.modules, "timm", None)        # `import timm` raises ImportError
    with pytest.raises(UserError, match=r"pip install timm"):
        get_adapter("timm:resnet18", weights="random")
    r = invoke(["circuit", "--model", "timm:resnet18", "--images", str(photos), "--class", "1",
                "--out", str(tmp_path / "out"), *SMALL])
    assert r.exit_code == 2 and r.output.startswith("Error: timm is not installed: pip install timm")
    listing = invoke(["models", "--all"])
    assert listing.exit_code == 0 and "timm is not installed" in listing.stdout
    assert "mobilenet_v3_small" in listing.stdout and "timm:" not in listing.stdout


@pytest.mark.slow          # imports every torchvision and timm builder
def test_models_all_lists_what_can_be_referenced():
    r = invoke(["models", "--all", "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row["name"])
    import timm
    import torchvision

    assert "efficientnet_lite0" in by_source["builtin"] and "world_plain" in by_source["builtin"]
    tv = set(torchvision.models.list_models(module=torchvision.models))
    assert set(by_source["torchvision"]) | (set(by_source["builtin"]) & tv) == tv
    assert set(by_source["timm"]) == {f"timm:{n}" for n in timm.list_models()}
    for name in ("mobilenet_v3_small", "timm:resnet18", "torchvision:convnext_tiny"):
        assert get_adapter(name, weights="random").name == name.removeprefix("torchvision:")


@pytest.mark.parametrize(("name", "needle"), [
    ("torchvision:mobilenet_v9", "did you mean mobilenet_v2"),
    ("timm:resnt18", "did you mean timm:resnet18"),
    ("resnet18@IMAGENET1K_V1", "not a knowledge-base key"),
])
def test_unknown_references_are_one_line(name, needle):
    with pytest.raises(UserError, match=needle) as err:
        get_adapter(name, weights="random")
    assert "\n" not in str(err.value)
