"""The knowledge base remembers how to load the CLIP its groups were labelled with (an `Encoder` node
with a content digest), on both real stores: `query search` and `label` need no CLIP options, a missing
checkpoint is one line (exit 2), and a different encoder under the same id is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import Planted

from neurflow_kb.labels import label_circuit, load_clip
from neurflow_kb.labels.recipes import EncoderRecipe, stored_encoder
from neurflow_kb.models.identity import module_digest
from neurflow_kb.store import LadybugStore
from neurflow_kb_dev.cli_runs import invoke, one_line_error

CONCEPTS = ["red", "green", "blue", "yellow", "gray", "circle", "square", "stripes", "wood", "sky"]


def other_weights(src: Path, dst: Path) -> Path:
    """A copy of the open_clip folder `src` at `dst` (same folder name, so the same encoder id) whose
    weights differ slightly."""
    shutil.copytree(src, dst)
    state = torch.load(dst / "open_clip_pytorch_model.bin", weights_only=True)
    state["logit_scale"] = state["logit_scale"] + 0.01
    torch.save(state, dst / "open_clip_pytorch_model.bin")
    return dst


@pytest.mark.slow          # the trained planted world
def test_search_and_label_load_the_recorded_encoder_and_check_its_weights(kb, planted: Planted,
                                                                          tmp_path: Path) -> None:
    open_kb, args = kb
    ckpt = shutil.copytree(planted.clip_dir, tmp_path / "mine" / "tiny-clip")    # deleted at the end
    clip = load_clip(checkpoint=ckpt)
    assert clip.recipe == EncoderRecipe("local-dir:tiny-clip", "checkpoint", path=str(ckpt.resolve()),
                                        digest=module_digest(clip.model))
    with open_kb() as st:
        st.write_circuits([label_circuit(planted.circuit(c), clip, CONCEPTS, top_n=3)
                           for c in planted.artifacts])
        recorded = st.encoders()
        assert recorded.to_dict("records") == [{"key": "local-dir:tiny-clip", "kind": "checkpoint",
                                                "model": None, "pretrained": None,
                                                "path": str(ckpt.resolve()),
                                                "digest": clip.recipe.digest}]
        assert stored_encoder(st) == clip.recipe

    given = invoke(["query", "search", "blue", "--clip-checkpoint", str(ckpt), "--limit", "5", "--json",
                    *args])
    bare = invoke(["query", "search", "blue", "--limit", "5", "--json", *args])
    assert given.exit_code == 0 and bare.exit_code == 0, (given.stderr, bare.stderr)
    rows = json.loads(bare.stdout)
    assert len(rows) == 5 and rows == json.loads(given.stdout)
    assert rows[0]["class_name"] == "blue square"

    vocab = tmp_path / "concepts.txt"
    vocab.write_text("\n".join(CONCEPTS) + "\n")
    relabel = invoke(["label", "--vocabulary", str(vocab), "--top-n", "3", "--replace", *args])
    assert relabel.exit_code == 0, relabel.stderr
    assert "with local-dir:tiny-clip" in relabel.stdout

    # another encoder under the same id: its labels and its searches are refused, nothing is written
    other = other_weights(planted.clip_dir, tmp_path / "other" / "tiny-clip")
    one_line_error(invoke(["query", "search", "blue", "--clip-checkpoint", str(other), *args]),
                   "other weights", clip.recipe.digest)
    with open_kb() as st:
        before = st.counts()
    one_line_error(invoke(["label", "--clip-checkpoint", str(other), "--vocabulary", str(vocab), "--replace",
                           *args]), "records encoder 'local-dir:tiny-clip'", clip.recipe.digest)
    with open_kb() as st:
        assert st.counts() == before and st.encoders()["digest"].tolist() == [clip.recipe.digest]

    # the recipe travels with push
    with open_kb(read_only=True) as src, LadybugStore(tmp_path / "pushed.lbug") as dst:
        dst.import_(src.export())
        assert dst.encoders().to_dict("records") == src.encoders().to_dict("records")

    shutil.rmtree(ckpt)
    one_line_error(invoke(["query", "search", "blue", *args]), "local-dir:tiny-clip", str(ckpt.resolve()),
                   "does not exist any more", "--clip-checkpoint")


def test_registered_local_encoder_is_recorded_by_name_and_found_by_name() -> None:
    from neurflow_kb.world import world_clip_dir

    by_folder = load_clip(checkpoint=world_clip_dir())
    by_name = load_clip("neurflow-world-clip")
    assert by_folder.recipe == by_name.recipe
    assert by_name.recipe.kind == "local" and by_name.recipe.model == "neurflow-world-clip"
    assert by_name.recipe.path is None                         # no path of this installation is recorded
    assert by_name.encoder == "local-dir:world_clip"


@pytest.mark.parametrize("fields, needle", [
    ({"encoder": "x", "kind": "weird", "digest": "sha256:1"}, "incomplete"),
    ({"encoder": "x", "kind": "checkpoint", "digest": "sha256:1"}, "lacks 'path'"),
    ({"encoder": "x", "kind": "pretrained", "model": 3, "digest": "sha256:1"}, "non-text 'model'"),
])
def test_a_damaged_recipe_is_one_line_error(fields: dict, needle: str) -> None:
    from neurflow_kb.errors import UserError

    with pytest.raises(UserError, match=needle):
        EncoderRecipe.from_dict(fields)
