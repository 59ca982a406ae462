"""Stage 1: weak labels to pseudo-masks with a SAM whose mask decoder is fine-tuned by a logic loss."""
