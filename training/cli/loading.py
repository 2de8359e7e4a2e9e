"""Opening the model a command names, and the tracking store a command writes to."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nkpredict.model.fitted import NKResistanceModel
    from nkpredict.registry import ModelReference
    from nkpredict.settings import Settings

__all__ = ["open_model"]


def open_model(
    model: str, tracking_uri: str | None, settings: Settings | None = None
) -> tuple[NKResistanceModel, ModelReference]:
    """Load ``model`` (a directory or an MLflow URI) for a command.

    An MLflow URI is read from the tracking store ``tracking_uri`` (default: the settings'),
    which must exist: a reader never creates an empty store
    (:func:`nkpredict.integrations.mlflow.setup_tracking` with ``create_store=False``).

    Parameters
    ----------
    model : str
        ``--model``.
    tracking_uri : str or None
        ``--tracking-uri``.
    settings : Settings, optional
        Default: ``Settings()`` from the environment.
    """
    from nkpredict.registry import load_model
    from nkpredict.settings import Settings

    return load_model(model, settings=settings or Settings(), tracking_uri=tracking_uri)
