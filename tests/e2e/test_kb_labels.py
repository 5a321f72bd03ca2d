"""Labels, text search, the viewer and image debugging on both real stores (embedded Ladybug and Neo4j):
labelled artifacts land as Concept/LABELED/embeddings, `label` labels what a store holds exactly as it
labels an artifact, `query search` ranks groups by cosine similarity with the classes they drive,
`view --class` renders from the store, and `debug --save` makes an image queryable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ARTIFACTS, Planted

from neurflow_kb import Circuit, queries
from neurflow_kb.labels import DEFAULT_TEMPLATES, label_circuit, load_clip
from neurflow_kb.store import LadybugStore
from neurflow_kb.store.graph import artifact_labels
from neurflow_kb_dev.cli_runs import invoke

#: End to end (trained worlds, a browser): not in the fast suite.
pytestmark = pytest.mark.slow

CONCEPTS = ["red", "green", "blue", "yellow", "gray", "circle", "square", "stripes", "wood", "sky"]


@pytest.fixture(scope="module")
def labelled(planted: Planted) -> dict[int, Circuit]:
    clip = load_clip(checkpoint=planted.clip_dir)
    return {cls: label_circuit(planted.circuit(cls), clip, CONCEPTS, top_n=3) for cls in planted.artifacts}


def test_labelled_artifacts_land_in_the_store_and_search_ranks_groups(kb, labelled, planted) -> None:
    open_kb, args = kb
    with open_kb() as st:
        results = st.write_circuits(labelled.values())
        assert [r.status for r in results] == ["written", "written"]
        for c in labelled.values():
            lab, emb = artifact_labels(c)
            got = st.run_query("MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept) WHERE g.run = $r "
                               "RETURN g.key AS gk, k.text AS t, k.vocabulary AS v, l.score AS s, "
                               "l.rank AS rk, l.encoder AS e ORDER BY gk, rk", {"r": c.key})
            assert len(got) == len(c.labels) == len(lab)
            assert set(got["v"]) == {"custom"} and set(got["e"]) == {"local-dir:tiny-clip"}
            stored = st.run_query("MATCH (g:NeuronGroup) WHERE g.run = $r AND g.embedding IS NOT NULL "
                                  "RETURN g.key AS gk, g.embedding AS e, g.embedding_encoder AS enc",
                                  {"r": c.key})
            assert len(stored) == len(c.group_embeddings) == len(emb)
            want = dict(zip(emb["group_key"], emb["embedding"], strict=True))
            for k, e in zip(stored["gk"], stored["e"], strict=True):
                np.testing.assert_allclose(e, want[k], atol=1e-6)

    # the expected ranking, computed here from the artifacts' embeddings (ties go to the smaller key)
    clip = load_clip(checkpoint=planted.clip_dir)

    def ranking(text: str, n: int) -> list[tuple[str, float, int]]:
        q = clip.encode_concepts([text], DEFAULT_TEMPLATES)[0].astype(np.float64)
        rows = []
        for c in labelled.values():
            _, emb = artifact_labels(c)
            for k, e in zip(emb["group_key"], emb["embedding"], strict=True):
                e = np.asarray(e, dtype=np.float32).astype(np.float64)
                rows.append((k, float(e @ q / np.linalg.norm(e) / np.linalg.norm(q)), c.target_class))
        return sorted(rows, key=lambda r: (-r[1], r[0]))[:n]

    expected = ranking("blue", 6)
    q = clip.encode_concepts(["blue"], DEFAULT_TEMPLATES)[0].astype(np.float64)

    run = invoke(["query", "search", "blue", "--clip-checkpoint", str(planted.clip_dir), "--limit", "6",
                  "--json", *args])
    assert run.exit_code == 0, run.stderr
    got = json.loads(run.stdout)
    assert [r["group_key"] for r in got] == [k for k, _, _ in expected]
    np.testing.assert_allclose([r["similarity"] for r in got], [s for _, s, _ in expected], atol=1e-4)
    assert [r["class"] for r in got] == [cls for _, _, cls in expected]
    assert all(r["class_name"] == "blue square" for r in got[:3])   # blue groups live in the blue circuit
    assert got[0]["labels"] == ["blue"]
    assert [r["similarity"] for r in got] == sorted((r["similarity"] for r in got), reverse=True)

    with open_kb(read_only=True) as st:
        only = queries.search(st, "red", clip, model="planted", limit=3)
        assert list(only.columns) == queries.SEARCH_COLUMNS
        red = ranking("red", 3)     # red groups live in the red circuit (a class-7 group may tie with them)
        assert only["group_key"].tolist() == [k for k, _, _ in red]
        assert only["class"].tolist() == [cls for _, _, cls in red] and (only["class"] == 0).sum() >= 2
        with pytest.raises(Exception, match="embedded with local-dir:tiny-clip"):
            queries.search(st, list(q), encoder="ViT-B-32/openai")


def test_label_command_labels_the_store_like_the_artifact(kb, labelled, planted) -> None:
    open_kb, args = kb
    with open_kb() as st:
        st.write_circuits([planted.circuit(cls) for cls in planted.artifacts])      # unlabelled
    vocab = Path(planted.clip_dir).parent / "concepts.txt"
    vocab.write_text("\n".join(CONCEPTS) + "\n")
    cli = ["label", "--clip-checkpoint", str(planted.clip_dir), "--vocabulary", str(vocab), "--top-n", "3",
           *args]
    res = invoke(cli)
    assert res.exit_code == 0, res.output
    n_groups = sum(len(c.groups) for c in labelled.values())
    assert f"labelled {n_groups} groups in 2 runs" in res.output
    again = invoke(cli)
    assert again.exit_code == 0 and "labelled 0 groups" in again.output
    assert f"{n_groups} already labelled" in again.output
    with open_kb(read_only=True) as st:
        for c in labelled.values():
            want, _ = artifact_labels(c)
            got = st.run_query("MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept) WHERE g.run = $r "
                               "RETURN g.key AS group_key, k.text AS concept, l.score AS score, "
                               "l.rank AS rank ORDER BY group_key, rank", {"r": c.key})
            want = want.sort_values(["group_key", "rank"]).reset_index(drop=True)
            assert got["group_key"].tolist() == want["group_key"].tolist()
            assert got["concept"].tolist() == want["concept"].tolist()      # same thumbnails, same labels
            np.testing.assert_allclose(got["score"].astype(float), want["score"].astype(float), atol=1e-5)


def test_label_methods_live_side_by_side_in_the_store(kb, planted) -> None:
    open_kb, args = kb
    with open_kb() as st:
        st.write_circuits([planted.circuit(cls) for cls in planted.artifacts])
    vocab = Path(planted.clip_dir).parent / "concepts.txt"
    vocab.write_text("\n".join(CONCEPTS) + "\n")
    base = ["label", "--clip-checkpoint", str(planted.clip_dir), "--vocabulary", str(vocab), "--top-n", "2",
            *args]
    n_groups = sum(len(planted.circuit(cls).groups) for cls in planted.artifacts)
    for extra, method in (([], "clip-contrast-run-0.75"), (["--label-method", "mean"], "clip-mean-softmax"),
                          (["--reference", "layer", "--contrast-weight", "1"], "clip-contrast-layer-1")):
        res = invoke([*base, *extra])
        assert res.exit_code == 0, res.output
        assert f"labelled {n_groups} groups" in res.output and method in res.output
    again = invoke([*base, "--label-method", "mean"])
    assert again.exit_code == 0 and "labelled 0 groups" in again.output
    with open_kb(read_only=True) as st:
        got = st.run_query("MATCH (g:NeuronGroup)-[l:LABELED]->(:Concept) RETURN l.method AS method, "
                           "count(l) AS n ORDER BY method")
    assert dict(zip(got["method"], got["n"].astype(int), strict=True)) == {
        "clip-contrast-layer-1": 2 * n_groups, "clip-contrast-run-0.75": 2 * n_groups,
        "clip-mean-softmax": 2 * n_groups}
    bad = invoke([*base, "--contrast-weight", "2"])
    assert bad.exit_code == 2 and "0.0<=x<=1.0" in bad.output


def test_a_labelled_artifact_adds_labels_to_a_complete_run(kb, labelled, planted) -> None:
    open_kb, _ = kb
    c = labelled[0]
    with open_kb() as st:
        assert st.write_circuit(planted.circuit(0)).status == "written"
        first = st.write_circuit(c)
        assert first.status == "labelled" and first.relationships == len(c.labels)
        assert st.write_circuit(c).status == "skipped"
        n = st.run_query("MATCH (g:NeuronGroup)-[l:LABELED]->() WHERE g.run = $r RETURN count(l) AS n",
                         {"r": c.key})["n"].iloc[0]
        assert int(n) == len(c.labels)


def test_view_from_the_store_in_chromium(kb, labelled, browser, tmp_path) -> None:
    open_kb, args = kb
    c = labelled[7]
    with open_kb() as st:
        st.write_circuits(labelled.values())
    out = tmp_path / "blue.html"
    res = invoke(["view", "--class", "blue square", "-o", str(out), *args])
    assert res.exit_code == 0, res.output
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.resolve().as_uri())
    assert page.locator(".group:not(.class-node)").count() == len(c.groups)
    key = f"{c.key}/{c.groups.sort_values('influence').iloc[-1]['layer']}/" \
          f"{int(c.groups.sort_values('influence').iloc[-1]['group'])}"
    page.locator(f".group[data-id='{key}']").click()
    assert page.locator("#details").get_attribute("data-group") == key
    assert page.locator("#details .label-table tr").count() == 4               # header + top 3 labels
    ARTIFACTS.mkdir(exist_ok=True)
    kind = "ladybug" if args[0] == "--store" else "neo4j"
    page.screenshot(path=str(ARTIFACTS / f"viewer-store-{kind}.png"), full_page=True)
    assert errors == []
    page.close()


def test_debug_save_makes_the_image_queryable(kb, tmp_path) -> None:
    from neurflow_kb import NeurFlow, NeurFlowConfig
    from neurflow_kb.models import get_adapter
    from neurflow_kb.world import CLASS_NAMES, generate

    open_kb, args = kb
    adapter = get_adapter("world")
    data = generate(24, seed=11, classes=["bee", "wasp", "ladybug"])
    circuit = NeurFlow(NeurFlowConfig(tau=4, top_k=10, ig_steps=8, max_nodes_per_layer=10)).fit(
        adapter, data.tensor(), CLASS_NAMES.index("bee"), progress=False)
    with open_kb() as st:
        st.write_circuit(circuit)
    image = tmp_path / "bee.png"
    generate(1, seed=99, classes=["bee"]).pil()[0].save(image)
    res = invoke(["debug", str(image), "--model", "world", "--save", "--json",
                                    "-o", str(tmp_path / "why.html"), *args])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    firing = [g for g in report["groups"] if g["fires"]]
    assert firing and report["predicted"] == report["class"] == CLASS_NAMES.index("bee")
    with open_kb(read_only=True) as st:
        best = max(firing, key=lambda g: g["score"])
        imgs = queries.images(st, best["gid"])
        assert imgs["image"].tolist() == [report["image"]]
        assert imgs["uri"].iloc[0] == str(image.resolve())
        assert float(imgs["score"].iloc[0]) == pytest.approx(best["score"], rel=1e-6)
        n = st.run_query("MATCH (:Image)-[a:ACTIVATES]->() RETURN count(a) AS n")["n"].iloc[0]
        assert int(n) == len(firing)
    # debugging the same image again replaces its links instead of adding more
    again = invoke(["debug", str(image), "--model", "world", "--save",
                                      "-o", str(tmp_path / "why.html"), *args])
    assert again.exit_code == 0, again.output
    with open_kb(read_only=True) as st:
        n = st.run_query("MATCH (:Image)-[a:ACTIVATES]->() RETURN count(a) AS n")["n"].iloc[0]
        assert int(n) == len(firing)
        assert len(pd.DataFrame(st.run_query("MATCH (i:Image) RETURN i.key AS k"))) == 1


def test_ingest_label_writes_labelled_runs(tmp_path) -> None:
    from neurflow_kb.world import CONCEPTS as WORLD_CONCEPTS
    from neurflow_kb.world import generate, world_clip_dir

    images = generate(24, seed=11, classes=["bee", "wasp", "ladybug"]).save(tmp_path / "images")
    vocab = tmp_path / "world.txt"
    vocab.write_text("\n".join(WORLD_CONCEPTS) + "\n")
    kb = tmp_path / "kb.lbug"
    args = ["ingest", "world", "--classes", "bee,wasp", "--images", str(images), "--artifacts",
            str(tmp_path / "circuits"), "--tau", "4", "--top-k", "10", "--ig-steps", "8", "--max-nodes", "10",
            "--quiet", "--store", str(kb), "--label", "--clip-checkpoint", str(world_clip_dir()),
            "--vocabulary", str(vocab), "--template", "{}", "--template", "a photo of {}", "--top-n", "2"]
    res = invoke(args)
    assert res.exit_code == 0, res.output
    assert res.output.count("written class") == 2
    with LadybugStore(kb, read_only=True) as st:
        runs = queries.runs(st, model="world")
        assert len(runs) == 2
        for run in runs["run"]:
            g = st.run_query("MATCH (g:NeuronGroup) WHERE g.run = $r RETURN count(g) AS n, "
                             "count(g.embedding) AS e", {"r": run}).iloc[0]
            n = st.run_query("MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept) WHERE g.run = $r "
                             "RETURN count(l) AS n, count(DISTINCT k.vocabulary) AS v", {"r": run}).iloc[0]
            assert int(g["e"]) == int(g["n"]) > 0 and int(n["n"]) == 2 * int(g["n"]) and int(n["v"]) == 1
        found = queries.search(st, "striped", load_clip(checkpoint=world_clip_dir()), limit=3,
                               templates=("{}", "a photo of {}"))
        assert len(found) == 3 and set(found["class_name"]) <= {"bee", "wasp"}
    # a second ingest reuses the labelled circuits and changes nothing
    again = invoke(args)
    assert again.exit_code == 0 and again.output.count("skipped class") == 2, again.output
    # another label method relabels the saved circuits; the store keeps both methods' labels
    mean = invoke([*args, "--label-method", "mean"])
    assert mean.exit_code == 0 and mean.output.count("labelled class") == 2, mean.output
    with LadybugStore(kb, read_only=True) as st:
        methods = set(st.run_query("MATCH ()-[l:LABELED]->() RETURN DISTINCT l.method AS m")["m"])
    assert methods == {"clip-mean-softmax", "clip-contrast-run-0.75"}
