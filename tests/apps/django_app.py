"""A small Django shop in one module, served by gunicorn in the integration tests."""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="tests-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["wideevents.integrations.django.WideEventsMiddleware"],
    WIDEEVENTS={
        "service": "django-shop",
        "exclude_paths": ["/healthz"],
        "request_headers": ["authorization", "x-request-id"],
    },
    LOGGING_CONFIG=None,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

import wideevents  # noqa: E402


def user(request: HttpRequest, user_id: int) -> JsonResponse:
    wideevents.add(**{"user.id": user_id, "cache.hit": user_id % 2 == 0})
    with wideevents.event("db.query", **{"db.sql.table": "users"}):
        pass
    return JsonResponse({"id": user_id})


def orders(request: HttpRequest) -> JsonResponse:
    wideevents.add(**{"cart.items": 3})
    return JsonResponse({"ok": True}, status=201)


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("database said: password=hunter2 rejected")


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("users/<int:user_id>", user),
    path("orders", orders),
    path("boom", boom),
    path("healthz", health),
]

application = get_wsgi_application()
