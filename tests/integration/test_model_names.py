"""One model name everywhere: the name `neurflow-kb models` lists, and the spellings users type for it
(`World-Plain`, `world-plain`), work in every command that takes a model: circuit, ingest, every query,
view, debug and label, on the embedded store written by ingest."""

from __future__ import annotations

import json

import pytest

from neurflow_kb import canonical_name
from neurflow_kb.world import CONCEPTS, world_clip_dir
from neurflow_kb.world.__main__ import main as world_main
from neurflow_kb_dev.cli_runs import invoke

SMALL = ["--tau", "2", "--top-k", "4", "--ig-steps", "2", "--filter", "all", "--max-nodes", "3", "--quiet"]


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    """world and world_plain circuits of bee and wasp, labelled with the world's CLIP, in one store."""
    root = tmp_path_factory.mktemp("names")
    images = root / "images"
    assert world_main(["write", str(images), "--per-class", "3", "--classes", "bee,wasp"]) == 0
    vocab = root / "concepts.txt"
    vocab.write_text("\n".join(CONCEPTS) + "\n")
    store = root / "kb.lbug"
    for model in ("world", "World-Plain"):
        r = invoke(["ingest", model, "--classes", "bee,wasp", "--images", images, "--store", store,
                    "--artifacts", root / "artifacts", "--max-images", "3", "--label", "--clip-checkpoint",
                    world_clip_dir(), "--vocabulary", vocab, *SMALL])
        assert r.exit_code == 0, (r.output, r.exception)
    return root, images, vocab, store


def test_canonical_spellings():
    for typed in ("world_plain", "world-plain", "World-Plain", " WORLD_PLAIN "):
        assert canonical_name(typed) == "world_plain"
    assert canonical_name("torchvision:ResNet50") == "resnet50"
    assert canonical_name("TIMM:ResNet18") == "timm:resnet18"
    assert canonical_name("EfficientNet-Lite0@efficientnet-lite0-57934424") == \
        "efficientnet_lite0@efficientnet-lite0-57934424"


@pytest.mark.slow
def test_the_listed_name_and_its_spellings_work_in_every_command(kb, tmp_path):
    root, images, vocab, store = kb
    listed = json.loads(invoke(["models", "--json"]).stdout)
    assert "world_plain" in [m["name"] for m in listed]
    clip = ["--clip-checkpoint", world_clip_dir()]
    image = next(images.rglob("*.png"))
    for typed in ("world_plain", "World-Plain"):
        commands = {
            "circuit": ["circuit", "--model", typed, "--images", images, "--class", "bee", "--out",
                        tmp_path / f"c-{typed}", "--max-images", "2", *SMALL],
            "ingest": ["ingest", typed, "--classes", "bee", "--images", images, "--store", store,
                       "--artifacts", root / "artifacts", "--max-images", "3", *SMALL],
            "query drivers": ["query", "drivers", "bee", "--model", typed],
            "query circuit": ["query", "circuit", "bee", "--model", typed],
            "query concept": ["query", "concept", "yellow", "--model", typed],
            "query search": ["query", "search", "yellow", "--model", typed, *clip],
            "query shared": ["query", "shared", "bee", "wasp", "--model", typed],
            "query similar": ["query", "similar", "bee", "--model", typed],
            "query compare": ["query", "compare", "bee", "--models", f"{typed},World"],
            "query classes": ["query", "classes", "--model", typed],
            "query runs": ["query", "runs", "--model", typed],
            "view": ["view", "--class", "bee", "--model", typed, "-o", tmp_path / f"v-{typed}.html"],
            "debug": ["debug", image, "--model", typed, "--class", "bee", "-o", tmp_path / f"d-{typed}.html"],
            "label": ["label", "--model", typed, "--class", "bee", "--replace", "--vocabulary", vocab, *clip],
        }
        for name, args in commands.items():
            if name not in ("circuit", "ingest"):
                args = [*args, "--store", store]
            r = invoke(args)
            assert r.exit_code == 0, (typed, name, r.output, r.exception)
            if name.startswith("query") and name != "query compare":
                assert "world_plain@" in r.stdout, (typed, name, r.stdout)
        assert "world_plain" in (tmp_path / f"v-{typed}.html").read_text()


@pytest.mark.slow          # an ingest of world classes (module fixture)
def test_readable_group_keys(kb):
    _, _, _, store = kb
    rows = json.loads(invoke(["query", "drivers", "bee", "--model", "world-plain", "--store", store,
                              "--json"]).stdout)
    first = rows[0]
    assert first["group"] == f"world_plain/bee/{first['layer']}/{first['group_index']}"
    spelled = f"World-Plain/2/{first['layer']}/{first['group_index']}"
    for typed in (first["group"], first["group_key"], spelled):
        for command in ("group", "path"):
            r = invoke(["query", command, typed, "--store", store, "--json"])
            assert r.exit_code == 0, (typed, command, r.output)
            assert first["group_key"] in r.stdout
    r = invoke(["query", "group", f"world_plain/bee/{first['layer']}/99", "--store", store])
    assert r.exit_code == 2 and r.output.startswith("Error: unknown group") and "has no group 99" in r.output


@pytest.mark.slow          # an ingest of world classes
def test_multi_class_ingest_continues_past_classes_without_images(kb, tmp_path):
    """Classes without images (ladybug, and mug between the two with images) are skipped, the others
    written, and the skipped ones reported together at the end with exit code 3."""
    _, images, _, _ = kb
    store = tmp_path / "kb.lbug"
    r = invoke(["ingest", "world", "--classes", "ladybug,bee,mug,wasp", "--images", images, "--store", store,
                "--artifacts", tmp_path / "arts", "--max-images", "2", *SMALL, "--filter", "true"])
    assert r.exit_code == 3, (r.output, r.exception)
    assert "written class 2 (bee)" in r.stdout and "written class 3 (wasp)" in r.stdout
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Warning: 2 classes skipped, no images selected:")
    assert "(ladybug)" in last and "(mug)" in last
    runs = json.loads(invoke(["query", "runs", "--model", "world", "--store", store, "--json"]).stdout)
    assert sorted(row["class_name"] for row in runs) == ["bee", "wasp"]
