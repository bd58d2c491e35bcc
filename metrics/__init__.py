"""Sample-quality metrics: distances between sample sets."""
