"""Stage 2: DeepLab / Mask2Former trained through mmsegmentation on stage 1's pseudo-masks."""
