"""Samplers: pure functions of a model adapter, built with lax.scan."""
