"""PyTorch checkpoints -> Flax params (numpy only here; torch is imported by checkpoint_io alone)."""
