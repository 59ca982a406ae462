"""SAM models: building, checkpoint loading, and the torchvision stand-in ``segment_anything`` needs."""

from stage1_pseudolabel.sam.torchvision_compat import ensure_torchvision

ensure_torchvision()
