"""The HTML viewer in headless Chromium: it renders every group, a click shows the group's details, it
fetches nothing from the network, and a screenshot is kept under test-artifacts/."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ARTIFACTS, CLI, Planted

from neurflow_kb import Circuit
from neurflow_kb.labels import label_circuit, load_clip
from neurflow_kb.viewer import from_circuit


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
    run = subprocess.run([CLI, "view", "--artifact", str(art), "-o", str(out)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
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
