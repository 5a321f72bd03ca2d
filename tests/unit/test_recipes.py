"""Recipes are validated against one schema (the dataclasses' fields and type hints): typos, wrong types,
out-of-range values and malformed TOML give one line naming the key; property-based fuzzing finds no
traceback."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurflow_kb.errors import UserError
from neurflow_kb.pipeline import Recipe, load_recipe, recipe_names
from neurflow_kb_dev.cli_runs import invoke

GOOD = """
model = "world"
weights = "default"
layers = ["layer3", "layer4", "fc"]

[preprocess]
resize = 64
crop = 64
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
interpolation = "bilinear"

[data]
images = "val"
max_images = 3

[neurflow]
tau = 2
top_k = 4
granularities = [1.0, 0.5]
class_filter = "true"
max_nodes_per_layer = 3
"""


def test_shipped_recipes_and_a_full_recipe_load(tmp_path):
    assert {"resnet50", "googlenet", "alexnet", "vit_b_16", "efficientnet-lite0"} <= set(recipe_names())
    for name in recipe_names():
        rec = load_recipe(name)
        assert rec.layers and rec.max_images == 50 and rec.config().tau == 16
    path = tmp_path / "r.toml"
    path.write_text(GOOD)
    rec = load_recipe(path)
    assert rec.model == "world" and rec.max_images == 3 and rec.images == "val"
    cfg = rec.config()
    assert cfg.tau == 2 and cfg.granularities == (1.0, 0.5) and cfg.class_filter == "true"
    assert rec.config(tau=5).tau == 5                     # command-line options override the recipe


@pytest.mark.parametrize("edit, needle", [
    (("tau = 2", "tua = 2"), "unknown key [neurflow] 'tua'; did you mean 'tau'?"),
    (("tau = 2", 'tau = "2"'), "neurflow.tau must be an integer"),
    (("tau = 2", "tau = 0"), "tau must be >= 1"),
    (("tau = 2", "tau = true"), "neurflow.tau must be an integer"),
    (('class_filter = "true"', 'class_filter = "best"'),
     "class_filter must be 'predicted' or 'true' or 'all'"),
    (("granularities = [1.0, 0.5]", 'granularities = ["big"]'), "granularities must be a list of numbers"),
    (("max_images = 3", "max_images = 0"), "data.max_images must be >= 1"),
    (("max_images = 3", "max_imgs = 3"), "unknown key [data] 'max_imgs'; did you mean 'max_images'?"),
    (("resize = 64", "resize = 64.5"), "preprocess.resize must be an integer"),
    (("crop = 64", "crop = 99"), "[preprocess] preprocess needs 1 <= crop <= resize"),
    (('weights = "default"', "weights = 3"), "weights must be a string"),
    (('model = "world"', 'modle = "world"'), "unknown key 'modle'; did you mean 'model'?"),
    (('layers = ["layer3", "layer4", "fc"]', 'layers = ["fc"]'), "`layers` needs at least two layers"),
    (("tau = 2", "tau = 99999999999999999999"), "neurflow.tau is too large"),
    (("[neurflow]", "[neurflow\n"), "not valid TOML"),
])
def test_bad_recipes_fail_in_one_line_naming_the_key(tmp_path, edit, needle):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(*edit, 1))
    with pytest.raises(UserError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert needle in msg and str(path) in msg and "\n" not in msg, msg
    r = invoke(["ingest", str(path), "--classes", "0", "--images", str(tmp_path)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.output


def test_a_missing_model_line_and_a_plain_name(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[neurflow]\ntau = 2\n")
    with pytest.raises(UserError, match="has no `model"):
        load_recipe(path)
    assert load_recipe("resnet18") == Recipe(model="resnet18")
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")


# -- property-based: any TOML-shaped document is a recipe or one UserError line ----------------------

_keys = st.sampled_from(["model", "weights", "layers", "preprocess", "data", "neurflow", "description",
                         "tau", "top_k", "images", "max_images", "resize", "crop", "mean", "std",
                         "class_filter", "granularities", "seed", "device", "extra", "x"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(string.printable, max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=4)),
                       max_leaves=12)


@pytest.mark.slow          # 300 hypothesis examples
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=6))
def test_fuzzed_recipes_never_raise_anything_but_one_line(data):
    try:
        rec = Recipe.from_dict(data, "recipe fuzz.toml", "fuzz.toml")
    except UserError as e:
        assert "\n" not in str(e) and str(e).startswith("recipe fuzz.toml")
        return
    assert isinstance(rec.model, str) and rec.model.strip()
    rec.config()


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_fuzzed_toml_text_never_raises_anything_but_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "r.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_recipe(path)
    except UserError as e:
        assert "\n" not in str(e)
