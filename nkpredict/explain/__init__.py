"""Explanations: exact attributions summed from features to genes, ligand axes and pathways."""
