"""NK-biology features: per-ligand expression, axis loads and signed pathway scores."""
