"""Training orchestration for nkpredict: pipeline, MLflow tracking, execution engines, CLI."""
