"""The HTTP endpoints, one module per concern; each module has its router.

==========================  ======  ===========================================================
``GET /health``             open    the process is alive                    (:mod:`.probes`)
``GET /ready``              open    a model is loaded (503 ``model_not_loaded`` otherwise)
``GET /metrics``            open    Prometheus text exposition
``GET /v1/model``           key     what model is served: name, version, run, data, metrics
                                    (:mod:`.model`)
``POST /v1/predict``        key     JSON samples -> probability/score, call, coverage
                                    (:mod:`.scoring`, a direct route: :mod:`.direct`)
``POST /v1/predict/file``   key     CSV/TSV/Parquet upload (samples as rows) -> the same
``POST /v1/explain``        key     JSON samples -> attributions at gene/axis/pathway level
                                    (a direct route)
``POST /v1/whatif``         key     JSON samples + interventions -> probability/log-odds as
                                    measured and after each (:mod:`.whatif`, a direct route)
``POST /v1/admin/reload``   admin   load the model again (or another URI) and swap it in
                                    (:mod:`.admin`)
==========================  ======  ===========================================================

"key": ``X-API-Key`` needed when ``NKP_API_KEY`` is set; "admin": always needs the admin key
(see :mod:`service.security`). The routes only call :mod:`service.answers` (which calls the
fitted model); no feature or scoring code lives here. :func:`service.app.create_app` puts
them together in the order that keeps the hot path cheap.
"""

__all__: list[str] = []
