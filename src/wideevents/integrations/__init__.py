"""Framework integrations: one event per request.

* :mod:`.wsgi` — ``WideEventsMiddleware`` around any WSGI app;
* :mod:`.asgi` — ``WideEventsASGIMiddleware`` around any ASGI app (FastAPI, Starlette);
* :mod:`.flask` — ``WideEvents(app)`` / ``init_app`` (``pip install 'wideevents[flask]'``);
* :mod:`.django` — ``"wideevents.integrations.django.WideEventsMiddleware"`` in ``MIDDLEWARE``
  (``pip install 'wideevents[django]'``).

Each is imported on its own, so ``import wideevents`` never imports a web framework.
"""
