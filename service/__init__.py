"""The nkpredict HTTP prediction service (FastAPI)."""
