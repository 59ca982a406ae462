"""Seeded synthetic VOC-layout datasets with exact ground truth, in a ``source`` and a ``target`` domain."""

from wsss.core.synthetic.dataset import points_json, scene_id, voc_xml, write_dataset, write_scene
from wsss.core.synthetic.scenes import (
    DEFAULT_CLASSES,
    DOMAINS,
    SPLITS,
    STYLES,
    ClassStyle,
    Scene,
    SceneObject,
    class_style,
    render_scene,
    scene_rng,
)

__all__ = [
    "DEFAULT_CLASSES", "DOMAINS", "SPLITS", "STYLES", "ClassStyle", "Scene", "SceneObject", "class_style",
    "points_json", "render_scene", "scene_id", "scene_rng", "voc_xml", "write_dataset", "write_scene",
]
