"""Adapters to outside systems; the only place in the library that imports MLflow."""
