"""XML helpers shared by the VOC and ScribbleSup readers; every error names the file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Tuple

from wsss.core.weak_labels.errors import MalformedAnnotationError, MissingFileError


def parse_xml(path: Path, *, what: str) -> ET.Element:
    """Root element of ``path``; :class:`MissingFileError` / :class:`MalformedAnnotationError`."""
    if not path.is_file():
        raise MissingFileError(path, f"{what} not found")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise MalformedAnnotationError(path, f"malformed XML: {exc}") from exc


def child_text(elem: ET.Element, tag: str, path: Path) -> str:
    """Stripped text of ``elem``'s child ``tag``; :class:`MalformedAnnotationError` if absent or empty."""
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise MalformedAnnotationError(path, f"<{elem.tag}> has no <{tag}>")
    return child.text.strip()


def child_number(elem: ET.Element, tag: str, path: Path) -> float:
    """``float`` of :func:`child_text`; :class:`MalformedAnnotationError` if not a number."""
    text = child_text(elem, tag, path)
    try:
        return float(text)
    except ValueError:
        raise MalformedAnnotationError(path, f"<{tag}> is not a number: {text!r}") from None


def xml_image_size(root: ET.Element, path: Path) -> Optional[Tuple[int, int]]:
    """``(height, width)`` from an optional ``<size>`` element, or None where there is none."""
    size_elem = root.find("size")
    if size_elem is None:
        return None
    return int(child_number(size_elem, "height", path)), int(child_number(size_elem, "width", path))
