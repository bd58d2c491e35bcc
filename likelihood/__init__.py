"""Likelihoods in nats and bits per dimension."""
