"""Flax networks, the Gaussian-mixture oracle, and the model adapter they share."""
