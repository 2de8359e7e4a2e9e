"""MLflow "model from code" entry: an nkpredict model directory served as a pyfunc.

MLflow logs this *file* (not a pickle) next to the saved model directory; loading the pyfunc
imports this module and reads the model with :meth:`NKResistanceModel.load`, which parses
JSON and XGBoost UBJ only.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import MODEL_ARTIFACT


class NKPyfuncModel(PythonModel):
    """Pyfunc wrapper: a samples x genes DataFrame in, the prediction table out."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model = NKResistanceModel.load(context.artifacts[MODEL_ARTIFACT])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        if "sample_id" in model_input.columns:
            model_input = model_input.set_index("sample_id")
        return self.model.predict_table(self.model.prepare(model_input))


set_model(NKPyfuncModel())
