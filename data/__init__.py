"""Datasets behind one stateless interface: `source.batch(step, process_index)`."""
