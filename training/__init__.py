"""Train / sample / eval drivers, train state, sharding and checkpoints."""
