"""The model: boosted trees, their tuning, and the fitted object that trains, saves and serves.

``NKResistanceModel`` is re-exported here because MLflow pyfunc artifacts logged by earlier
versions import it from ``nkpredict.model``.
"""

from nkpredict.model.fitted import MODEL_FILE, NKResistanceModel

__all__ = ["MODEL_FILE", "NKResistanceModel"]
