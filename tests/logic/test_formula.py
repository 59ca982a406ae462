"""The formula language: parse errors, the built-in constraints restated as formulas (same log-truth
and gradient as the hand-vectorised modules on real VOC images), priors, and user-registered types."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch

from logic.constraints import CompiledConstraints, ConstraintConfig, constraint_types
from logic.formula import FormulaError, parse_formula
from logic.formula.restated import RESTATED

@pytest.fixture(scope="module")
def voc_problems(voc_root):
    """Three real VOC training images in a 128 x 128 low-res frame: weak labels, superpixels, image."""
    from logic.superpixels import compute_superpixels
    from wsss.core.frames import SamFrame
    from wsss.core.datasets import voc_dataset
    from wsss.core.weak_labels import read_image

    ds = voc_dataset(voc_root, split="train")
    out = []
    for image_id in ds.ids:
        ann = ds.load(image_id)
        if not len(ann.boxes) or ann.scribbles is None:
            continue
        frame = SamFrame(height=ann.height, width=ann.width, encoder_size=512, lowres=128)
        image = frame.image_to_lowres(read_image(ann.image_path))
        valid = frame.valid_lowres().numpy()
        classes = np.unique(ann.box_classes)
        lut = np.full(256, 255, np.int64)
        lut[0] = 0
        lut[classes] = np.arange(1, len(classes) + 1)
        scribbles = lut[frame.label_map_to_lowres(ann.scribbles, keep_thin=True)]
        rng = np.random.default_rng(len(out))
        k = 1 + len(classes)
        zero_shot = torch.log_softmax(torch.tensor(rng.normal(size=(k, 128, 128)) * 4), dim=0)
        out.append(dict(num_labels=k, boxes=frame.boxes_to_lowres(ann.boxes), box_classes=lut[ann.box_classes],
                        valid=valid, scribbles=scribbles, image=image,
                        superpixels=compute_superpixels(image, valid=valid, n_segments=150),
                        zero_shot_log_probs=zero_shot, logits=rng.normal(size=(k, 128, 128)) * 3))
        if len(out) == 3:
            break
    return out


def _truth_and_grad(pb, config):
    kw = {k: v for k, v in pb.items() if k != "logits"}
    cc = CompiledConstraints.build(config=config, **kw)
    logits = torch.tensor(pb["logits"], dtype=torch.float64, requires_grad=True)
    truths = cc.truths(torch.log_softmax(logits, dim=0))
    (name,) = truths
    truths[name].backward()
    return truths[name].item(), logits.grad.clone(), cc


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(RESTATED))
def test_builtin_restated_as_formula_has_the_same_truth_and_gradient(voc_problems, name):
    options, text = RESTATED[name]
    for pb in voc_problems:
        module_cfg = ConstraintConfig({n: float(n == name) for n in constraint_types()}, {name: options} if options else None)
        formula_cfg = ConstraintConfig({n: 0.0 for n in constraint_types()} | {"f": 1.0}, formulas={"f": text})
        t_module, g_module, cc_module = _truth_and_grad(pb, module_cfg)
        t_formula, g_formula, cc_formula = _truth_and_grad(pb, formula_cfg)
        assert t_module < 0 and math.isfinite(t_module)
        assert t_formula == pytest.approx(t_module, rel=1e-5), name
        scale = g_module.abs().max().item()
        assert scale > 0
        assert (g_formula - g_module).abs().max().item() <= 1e-5 * scale, name
        if name in ("background", "scribbles", "zero_shot_anchor", "border_precision", "colour_affinity", "box_fill"):
            # one outer forall chain over exactly the module's groundings
            assert cc_formula.num_groundings["f"] == cc_module.num_groundings[name], name


def _small_problem(seed=0, k=3, size=12):
    rng = np.random.default_rng(seed)
    valid = np.ones((size, size), bool)
    valid[:, -2:] = False
    return dict(num_labels=k, boxes=np.array([[1, 1, 6, 8], [4, 3, 10, 11]]), box_classes=np.array([1, 2]), valid=valid,
                class_names=("background", "disc", "cup")[:k]), rng.normal(size=(k, size, size)) * 2


def _probs(logits):
    return np.exp(torch.log_softmax(torch.tensor(logits, dtype=torch.float64), dim=0).numpy()).clip(1e-6, 1 - 1e-6)


def test_containment_prior_matches_a_probability_space_loop():
    """cup(p) -> forall q in N8(p): cup(q) or disc(q), against a per-pixel loop over probabilities."""
    kw, logits = _small_problem()
    text = "forall p in pixels: cup(p) -> forall q in N8(p): cup(q) or disc(q)"
    cc = CompiledConstraints.build(config=ConstraintConfig({n: 0 for n in constraint_types()}, formulas={"inside": text},
                                                           class_names=("background", "disc", "cup")), **kw)
    got = cc.truths(torch.log_softmax(torch.tensor(logits, dtype=torch.float64), dim=0))["inside"].item()
    p = _probs(logits)
    valid = kw["valid"]
    h, w = valid.shape
    ref = 0.0
    for y in range(h):
        for x in range(w):
            if not valid[y, x]:
                continue
            body = 1.0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if (dy, dx) != (0, 0) and 0 <= yy < h and 0 <= xx < w and valid[yy, xx]:
                        body *= 1 - (1 - p[2, yy, xx]) * (1 - p[1, yy, xx])  # or = 1 - (1-a)(1-b)
            ref += math.log(1 - p[2, y, x] * (1 - body))  # a -> b = 1 - a (1 - b)
    assert got == pytest.approx(ref, rel=1e-6)


def test_tags_prior_matches_the_reference_and_an_absent_class_is_false():
    kw, logits = _small_problem()
    kw["tags"] = np.array([False, True, False])  # tagged: disc; untagged: cup
    text = "(forall k in tagged: exists p in pixels: k(p)) and (forall k in untagged: forall p in pixels: not k(p))"
    cc = CompiledConstraints.build(config=ConstraintConfig({n: 0 for n in constraint_types()}, formulas={"tags": text}), **kw)
    got = cc.truths(torch.log_softmax(torch.tensor(logits, dtype=torch.float64), dim=0))["tags"].item()
    p = _probs(logits)
    v = kw["valid"]
    ref = math.log(1 - np.prod(1 - p[1][v])) + np.log(1 - p[2][v]).sum()
    assert got == pytest.approx(ref, rel=1e-6)
    # Without tags the formula is left out (it requires them).
    cc = CompiledConstraints.build(config=ConstraintConfig({n: 0 for n in constraint_types()}, formulas={"tags": text}),
                                   **{**kw, "tags": None})
    assert "tags" not in cc.constraints
    # A dataset class absent from the image's channels is false everywhere: log(eps) per pixel.
    kw2, logits2 = _small_problem(k=2)
    kw2["class_names"] = ("background", "disc")
    cfg = ConstraintConfig({n: 0 for n in constraint_types()}, formulas={"f": "forall p in pixels: cup(p)"},
                           class_names=("background", "disc", "cup"))
    cc = CompiledConstraints.build(config=cfg, **kw2)
    got = cc.truths(torch.log_softmax(torch.tensor(logits2), dim=0))["f"].item()
    assert got == pytest.approx(kw2["valid"].sum() * math.log(1e-6), rel=1e-6)


@pytest.mark.parametrize("text, column, message", [
    ("forall p in pixels dog(p)", 20, "expected ':' after the set of 'p'"),
    ("forall p in pixles: dog(p)", 13, "unknown set 'pixles'"),
    ("forall p in pixels: dgo(p)", 21, "unknown class 'dgo'; valid: background, cat, dog"),
    ("forall p in pixels: dog(q)", 25, "unbound variable 'q'"),
    ("forall p in pixels: dog(p) and", 31, "expected a class atom"),
    ("exists b in boxes: class_of(p, b)", 29, "unbound variable 'p'"),
    ("forall p in pixels: forall q in N8(p, 0): dog(q)", 39, "whole number >= 1"),
    ("forall p in pixels: dog(p) $ cat(p)", 28, "unexpected character '$'"),
    ("most(1.5) p in pixels: dog(p)", 6, "must be in (0, 1]"),
])
def test_parse_errors_point_at_the_position(text, column, message):
    with pytest.raises(FormulaError) as info:
        parse_formula(text, name="prior", class_names=("background", "cat", "dog"))
    msg = str(info.value)
    assert f"formula 'prior', column {column}:" in msg and message in msg
    assert msg.splitlines()[-1].index("^") - 2 == column - 1  # the caret under the column


def test_config_refuses_unknown_names_and_accepts_formulas_and_options():
    with pytest.raises(ValueError, match="unknown constraint 'box_fil'.*registered:.*box_fill"):
        ConstraintConfig.from_dict({"box_fil": 1.0})
    with pytest.raises(ValueError, match="unknown options \\['fractoin'\\] of constraint 'box_fill'"):
        ConstraintConfig.from_dict({"box_fill": {"weight": 1.0, "fractoin": 0.5}})
    with pytest.raises(FormulaError, match="column"):
        ConstraintConfig.from_dict({"mine": {"formula": "forall p in: dog(p)"}})
    cfg = ConstraintConfig.from_dict({"box_fill": {"weight": 2.0, "fraction": 0.7},
                                      "mine": {"weight": 0.5, "formula": "forall p in inside_boxes: not background(p)"}})
    assert cfg.weights["box_fill"] == 2.0 and cfg.options["box_fill"]["fraction"] == 0.7
    assert cfg.weights["mine"] == 0.5 and cfg.requires("mine") == {"boxes"}
    assert "superpixels" in cfg.needed_inputs and cfg.without("border_precision").needed_inputs >= {"boxes"}
    assert "border_precision" not in cfg.without("border_precision").active


def test_a_user_module_registers_a_type_loaded_through_custom_imports(tmp_path):
    """A constraint type written outside the package, named in a stage-1 config: built and trained on."""
    from stage1_pseudolabel.pipeline.config import build_config

    module = tmp_path / "my_prior.py"
    module.write_text(textwrap.dedent('''
        from dataclasses import dataclass
        import torch
        from logic.constraints import Constraint, register_constraint

        @dataclass(frozen=True)
        class CornerIsBackground(Constraint):
            """forall p in the top-left corner: background(p)"""
            size: int
            num_groundings: int
            name: str = "corner_background"

            def dense(self, atoms):
                x = atoms.x[0, : self.size, : self.size]
                return x, torch.ones_like(x, dtype=torch.bool)

        @register_constraint("corner_background", options={"size": 2})
        def build(inputs, *, size):
            return CornerIsBackground(size=size, num_groundings=size * size)
    '''))
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(f"custom_imports: [{module.as_posix()}]\nloss:\n  corner_background: {{weight: 1.0, size: 3}}\n")
    cfg = build_config(config_file=str(cfg_path))
    config = cfg.constraints
    assert config.weights["corner_background"] == 1.0 and config.options["corner_background"] == {"size": 3}
    cc = CompiledConstraints.build(num_labels=2, valid=np.ones((8, 8), bool), config=config)
    assert "corner_background" in cc.constraints and cc.num_groundings["corner_background"] == 9
    log_probs = torch.log_softmax(torch.zeros(2, 8, 8), dim=0)
    assert cc.truths(log_probs)["corner_background"].item() == pytest.approx(9 * math.log(0.5))
    bad = tmp_path / "bad.yaml"
    bad.write_text("custom_imports: [no_such_module_xyz]\n")
    with pytest.raises(ImportError, match="custom_imports: cannot import 'no_such_module_xyz'"):
        build_config(config_file=str(bad))



@pytest.mark.realdata
@pytest.mark.parametrize("name", list(RESTATED))
def test_violation_maps_sum_to_minus_the_truth_and_agree_with_the_formula(voc_problems, name):
    """Each type's pixel map sums to minus its log-truth; where the formula has a per-pixel reading
    (its outer forall over pixels) the module's map and the formula's agree."""
    options, text = RESTATED[name]
    pb = voc_problems[0]
    kw = {k: v for k, v in pb.items() if k != "logits"}
    cfg = ConstraintConfig({n: float(n == name) for n in constraint_types()} | {"f": 1.0}, {name: options} if options else None,
                           formulas={"f": text})
    cc = CompiledConstraints.build(config=cfg, **kw)
    log_probs = torch.log_softmax(torch.tensor(pb["logits"]), dim=0)
    truths = cc.truths(log_probs)
    maps = cc.violation_maps(log_probs)
    assert maps[name].shape == (128, 128) and bool((maps[name] >= -1e-9).all())
    assert maps[name].sum().item() == pytest.approx(-truths[name].item(), rel=1e-6)
    if text.startswith("forall p in") and name != "colour_affinity":
        assert torch.allclose(maps["f"], maps[name], rtol=1e-5, atol=1e-7)


def test_list_constraints_shows_registered_types_and_the_configs_formulas():
    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.train import describe_constraints

    text = describe_constraints(build_config(config_file="configs/stage1/nested_proxy_containment.yaml"))
    lines = {line.split()[0]: line for line in text.splitlines()[1:-1]}
    assert set(constraint_types()) | {"inner_in_outer"} == set(lines)
    assert "fraction=0.5" in lines["box_fill"] and "bird(p) -> forall q in N8(p)" in lines["inner_in_outer"]
    assert text.splitlines()[-1].endswith("border_precision, inner_in_outer")


def test_ablation_sets_one_weight_to_zero_and_keeps_options():
    from wsss.apps.ablation import without

    loss = {"background": 4.0, "box_fill": {"weight": 2.0, "fraction": 0.8}}
    assert without(loss, "box_fill") == {"background": 4.0, "box_fill": {"weight": 0.0, "fraction": 0.8}}
    assert without(loss, "neighbourhood")["neighbourhood"] == 0.0  # a default-weighted type
    cfg = ConstraintConfig.from_dict(without(loss, "background"))
    assert "background" not in cfg.active and cfg.options["box_fill"]["fraction"] == 0.8


def test_nested_scenes_put_the_inner_object_strictly_inside_the_outer_one(tmp_path):
    from scipy.ndimage import binary_dilation

    from wsss.core.synthetic.nested import INNER, OUTER, render_nested_scene, write_nested_dataset

    for index in range(5):
        scene = render_nested_scene(seed=3, split="train", index=index, height=150, width=170)
        inner, outer = scene.label == INNER, scene.label == OUTER
        assert inner.any() and outer.any()
        ring = binary_dilation(inner, np.ones((3, 3), bool)) & ~inner
        assert outer[ring].all()  # every neighbour of the inner object is outer: the containment prior holds
        for obj in scene.objects:
            ys, xs = np.nonzero(scene.instances == obj.instance_id)
            assert obj.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    root = write_nested_dataset(tmp_path / "nested", num_train=2, seed=3)
    again = write_nested_dataset(tmp_path / "nested2", num_train=2, seed=3)
    name = "JPEGImages/nested_train_00001.jpg"
    assert (root / name).read_bytes() == (again / name).read_bytes()


@pytest.mark.parametrize("inner_label", ["click", "tag"])
def test_nested_scenes_with_a_clicked_or_tagged_inner_object(inner_label, tmp_path):
    """The outer object is boxed, the inner one only clicked (``click``) or named by the image's tags
    (``tag``). Stage 1 makes the inner a box-less object, prompted by its click or by nothing (the
    prompt-less object of a tag); the containment formula grounds on it, and the background constraint
    lets the inner class lie outside the (outer) box."""
    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.prepare import ImageInputs, compile_constraints, open_dataset, prepare_image
    from wsss.core.synthetic.nested import INNER, OUTER, write_nested_dataset

    root = write_nested_dataset(tmp_path / "nested", num_train=2, seed=3, inner_label=inner_label)
    cfg = build_config(config_file=f"configs/stage1/nested_proxy_{inner_label}_containment.yaml",
                       overrides={"data.root": str(root), "data.split": "train", "work_dir": str(tmp_path / "w")})
    dataset = open_dataset(cfg)
    inputs = ImageInputs.from_config(cfg)
    for image_id in dataset.ids:
        ann = dataset.load(image_id)
        assert ann.box_classes.tolist() == [OUTER] and INNER in ann.point_classes.tolist()
        prepared = prepare_image(ann, inputs=inputs, encoder_size=1024, lowres=256)
        assert prepared.objects.classes.tolist() == [OUTER, INNER] and prepared.objects.boxed.tolist() == [True, False]
        assert prepared.objects.promptless.tolist() == [False, inner_label == "tag"]
        groups = prepared.prompts.groups()
        assert [g.boxes is not None for _, g in groups] == [True, False]
        if inner_label == "click":
            assert groups[1][1].point_labels.tolist() == [[1.0]]  # its click, alone
        else:
            assert ann.tags.tolist() == [OUTER, INNER] and groups[1][1].point_labels is None  # no prompt
        cc = compile_constraints(ann, prepared, inputs=inputs)
        assert {"background", "box_tightness", "inner_size", "inner_in_outer"} <= set(cc.constraints)
        assert ("tags" in cc.constraints) == (inner_label == "tag")
        assert cc.constraints["background"].also == (2,)  # bird's channel: [background, aeroplane, bird]


def test_exclusion_prior_matches_a_probability_space_loop():
    """disc(p) -> forall q in N4(p): not cup(q) (A never touches B), against a per-pixel loop."""
    kw, logits = _small_problem(seed=4)
    text = "forall p in pixels: disc(p) -> forall q in N4(p): not cup(q)"
    cc = CompiledConstraints.build(config=ConstraintConfig({n: 0 for n in constraint_types()}, formulas={"apart": text},
                                                           class_names=("background", "disc", "cup")), **kw)
    got = cc.truths(torch.log_softmax(torch.tensor(logits, dtype=torch.float64), dim=0))["apart"].item()
    p, valid = _probs(logits), kw["valid"]
    h, w = valid.shape
    ref = 0.0
    for y in range(h):
        for x in range(w):
            if valid[y, x]:
                body = np.prod([1 - p[2, y + dy, x + dx] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
                                if 0 <= y + dy < h and 0 <= x + dx < w and valid[y + dy, x + dx]])
                ref += math.log(1 - p[1, y, x] * (1 - body))
    assert got == pytest.approx(ref, rel=1e-6)


def test_the_priors_documented_in_the_readmes_compile_and_evaluate():
    """Every ``formula: "..."`` a user may copy from README.md or logic/README.md parses, binds to an
    image and gives a finite log-truth <= 0 (documentation that does not run is a bug)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    texts = [m for doc in ("README.md", "logic/README.md")
             for m in re.findall(r'formula: "([^"]+)"', (root / doc).read_text())]
    assert len(texts) >= 4
    names = ("background", "cup", "disc", "boat", "horse")
    kw, _ = _small_problem(seed=5)
    kw = dict(kw, num_labels=len(names), class_names=names, tags=np.array([False, True, True, False, False]))
    logits = np.random.default_rng(5).normal(size=(len(names), 12, 12)) * 2
    log_probs = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), dim=0)
    for i, text in enumerate(texts):
        cfg = ConstraintConfig({n: 0 for n in constraint_types()}, formulas={f"f{i}": text}, class_names=names)
        truth = CompiledConstraints.build(config=cfg, **kw).truths(log_probs)[f"f{i}"]
        assert torch.isfinite(truth) and truth.item() <= 0, text
