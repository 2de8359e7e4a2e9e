"""MLflow "model from code" entry: an nkpredict model directory served as a pyfunc.

MLflow logs this *file* (not a pickle) next to the saved model directory
(:func:`nkpredict.integrations.mlflow.log_model`); loading the pyfunc runs it, and
:class:`~nkpredict.integrations.mlflow.NKPyfuncModel` reads the model with
:meth:`NKResistanceModel.load`, which parses JSON and XGBoost UBJ only. Keep this file this
small: MLflow stores a copy of it with every logged model.
"""

from __future__ import annotations

from mlflow.models import set_model

from nkpredict.integrations.mlflow import NKPyfuncModel

__all__: list[str] = []

set_model(NKPyfuncModel())
