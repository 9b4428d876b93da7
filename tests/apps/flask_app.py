"""A small Flask shop served by gunicorn in the integration tests."""

from flask import Flask

import wideevents
from wideevents.integrations.flask import WideEvents

app = Flask(__name__)
WideEvents(app, exclude_paths=["/healthz"], request_headers=["authorization", "x-request-id"])


@app.get("/users/<int:user_id>")
def user(user_id: int) -> dict[str, int]:
    wideevents.add(**{"user.id": user_id, "cache.hit": user_id % 2 == 0})
    with wideevents.event("db.query", **{"db.sql.table": "users"}):
        pass
    return {"id": user_id}


@app.post("/orders")
def orders() -> tuple[dict[str, bool], int]:
    wideevents.add(**{"cart.items": 3})
    return {"ok": True}, 201


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("database said: password=hunter2 rejected")


@app.get("/healthz")
def health() -> str:
    return "ok"
