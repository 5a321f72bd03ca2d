"""The HTML viewer in headless Chromium: it renders every group, a click shows the group's details, it
fetches nothing from the network, and a screenshot is kept under test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ARTIFACTS, Planted

from neurflow_kb import Circuit
from neurflow_kb.labels import label_circuit, load_clip
from neurflow_kb.viewer import from_circuit
from neurflow_kb_dev.cli_runs import invoke, one_line_error

#: End to end (trained worlds, a browser): not in the fast suite.
pytestmark = pytest.mark.slow


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    return page, errors, requests


def test_viewer_renders_groups_and_shows_details_on_click(planted: Planted, browser, tmp_path: Path) -> None:
    concepts = ["red", "green", "blue", "yellow", "gray", "circle", "square", "stripes"]
    circuit = label_circuit(planted.circuit(7), load_clip(checkpoint=planted.clip_dir), concepts, top_n=3)
    art = circuit.save(tmp_path / "labelled")
    out = tmp_path / "circuit.html"
    run = invoke(["view", "--artifact", art, "-o", out])
    assert run.exit_code == 0, run.stderr
    assert f"({len(circuit.groups)} groups" in run.stdout
    text = out.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        "http://www.w3.org/2000/svg", "") and "https://" not in text

    page, errors, requests = open_page(browser, out)
    assert page.locator(".group:not(.class-node)").count() == len(circuit.groups)
    assert page.locator(".class-node").count() == 1
    view = from_circuit(circuit)
    assert page.locator("#edges path").count() == len(view.edges)
    assert page.locator(".layer").count() == circuit.groups["depth"].nunique() + 1
    assert page.locator(".group img").count() == sum(min(4, len(g["thumbnails"])) for g in view.groups)

    # click the strongest group of the middle layer: its members, labels, up- and downstream appear
    g = max((g for g in view.groups if g["depth"] == 2), key=lambda g: g["influence"])
    page.locator(f".group[data-id='{g['id']}']").click()
    details = page.locator("#details")
    assert details.get_attribute("data-group") == g["id"]
    assert page.locator(f".group[data-id='{g['id']}']").get_attribute("class").split().count("selected") == 1
    assert details.locator(".member-table tr").count() == len(g["members"]) + 1
    shown = details.locator(".label-table tr td:nth-child(2)").all_inner_texts()
    assert shown == [lab["concept"] for lab in g["labels"]]
    ups = [e for e in view.edges if e["target"] == g["id"]]
    downs = [e for e in view.edges if e["source"] == g["id"]]
    body = details.inner_text()
    assert f"UPSTREAM GROUPS ({len(ups)})" in body.upper() and f"DOWNSTREAM ({len(downs)})" in body.upper()
    assert page.locator("#edges path.hot").count() == len(ups) + len(downs)

    # following an upstream link selects that group
    details.locator("a").first.click()
    assert details.get_attribute("data-group") != g["id"]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "viewer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []
    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []
    page.close()


def test_debug_explanation_page_opens_offline(planted: Planted, browser, tmp_path: Path) -> None:
    from neurflow_kb.debug import debug_image
    from neurflow_kb.viewer.explain import write_explanation

    view = from_circuit(Circuit.load(planted.artifacts[0]))
    image = tmp_path / "red.png"
    image.write_bytes(planted.world.png(0))
    result = debug_image(planted.adapter, image, view)
    out = write_explanation(result, tmp_path / "debug.html")
    page, errors, requests = open_page(browser, out)
    assert page.locator("#scores tr[data-group]").count() == len(view.groups)
    assert page.locator("#scores tr.fires").count() == int(result.scores["fires"].sum())
    assert page.locator("ol.path li").count() == len(result.path)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "debug.png"), full_page=True)
    assert errors == [] and [r for r in requests if not r.startswith(("file:", "data:"))] == []
    page.close()


def check_compare_page(browser, out: Path, view, shot: str) -> None:
    """Both circuits drawn, every match linked, matched groups marked; a click highlights its partners."""
    page, errors, requests = open_page(browser, out)
    assert page.locator("#pane-a .group:not(.class-node)").count() == len(view.a.groups)
    assert page.locator("#pane-b .group:not(.class-node)").count() == len(view.b.groups)
    assert page.locator(".class-node").count() == 2
    assert page.locator("#pane-a .edges path").count() == len(view.a.edges)
    assert page.locator("#pane-b .edges path").count() == len(view.b.edges)
    assert len(view.links) > 0 and page.locator("#links path").count() == len(view.links)
    assert page.locator("#pane-a .group.matched").count() == len(view.matched("a"))
    assert page.locator("#pane-b .group.matched").count() == len(view.matched("b"))
    # click the matched group of A with the most partners: they light up in B, with their links
    partners: dict[str, set[str]] = {}
    for link in view.links:
        partners.setdefault(link["a"], set()).add(link["b"])
    gid = max(sorted(partners), key=lambda k: len(partners[k]))
    page.locator(f"#pane-a .group[data-id='{gid}']").click()
    assert page.locator("#details").get_attribute("data-group") == gid
    hot = {page.locator("#pane-b .group.match-hot").nth(i).get_attribute("data-id")
           for i in range(page.locator("#pane-b .group.match-hot").count())}
    assert hot == partners[gid]
    assert page.locator("#links path.hot").count() == len(partners[gid])
    assert page.locator("#details .match-table tr").count() == len(partners[gid]) + 1
    # following a match selects the partner group in B
    page.locator("#details .match-table a").first.click()
    assert page.locator("#details").get_attribute("data-group") in partners[gid]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    assert errors == []
    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []
    page.close()


TOY_NAMES = [f"toy{j}" for j in range(10)]


def toy(cls: int) -> Circuit:
    from neurflow_kb_dev.synthetic import synthetic_circuit

    return synthetic_circuit(cls, chain=(("conv", 32), ("b1", 48), ("b2", 48), ("logits", 10)),
                             nodes_per_layer=(2, 10, 20), tau=6, model="toy", weights="random",
                             class_names=TOY_NAMES)


def test_two_classes_side_by_side_match_groups_by_shared_neurons(browser, tmp_path: Path) -> None:
    from neurflow_kb.viewer import compare_artifacts

    a, b = toy(1).save(tmp_path / "toy1"), toy(3).save(tmp_path / "toy3")
    out = tmp_path / "two-classes.html"
    run = invoke(["view", "--artifact", a, "--compare-artifact", b, "-o", out])
    assert run.exit_code == 0, run.stderr
    view = compare_artifacts(Circuit.load(a), Circuit.load(b))
    assert f"{len(view.links)} matched pairs by share through shared neurons" in run.stdout
    check_compare_page(browser, out, view, "viewer-compare-classes.png")


def test_one_class_of_two_models_side_by_side_from_the_store(browser, tmp_path: Path) -> None:
    from neurflow_kb.store import LadybugStore
    from neurflow_kb.viewer.store_view import compare_store_view
    from neurflow_kb_dev.synthetic import synthetic_circuit, synthetic_labels

    twin = synthetic_circuit(1, chain=(("stem", 24), ("s1", 40), ("s2", 40), ("s3", 64), ("head", 10)),
                             nodes_per_layer=(3, 12, 24, 30), tau=8, model="twin", weights="v2",
                             class_names=TOY_NAMES, seed=5)
    circuits = [toy(1), twin]
    kb = tmp_path / "kb.lbug"
    with LadybugStore(kb) as st:
        st.write_circuits(circuits)
        st.write_labels(*synthetic_labels(circuits))
    out = tmp_path / "two-models.html"
    run = invoke(["view", "--class", "toy1", "--model", "toy", "--compare-model", "twin", "--store", kb,
                  "-o", out])
    assert run.exit_code == 0, run.stderr
    view = compare_store_view(str(kb), cls="toy1", model="toy", other_model="twin")
    assert f"{len(view.links)} matched pairs by CLIP embedding cosine" in run.stdout
    check_compare_page(browser, out, view, "viewer-compare-models.png")
    one_line_error(invoke(["view", "--class", "toy1", "--model", "toy", "--compare-model", "toy",
                           "--store", kb, "-o", out]), "both sides are the same run")
