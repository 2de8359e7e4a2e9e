"""Adapters to outside systems; the only place in the library that imports MLflow.

:mod:`nkpredict.integrations.mlflow` holds every MLflow set-up, load, save and the pyfunc;
:mod:`nkpredict.integrations.mlflow_model` is the "model from code" file MLflow logs.
"""
