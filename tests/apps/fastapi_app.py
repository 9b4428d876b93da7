"""A small FastAPI shop served by uvicorn in the integration tests."""

from fastapi import FastAPI

import wideevents
from wideevents.integrations.asgi import WideEventsASGIMiddleware

app = FastAPI()
app.add_middleware(
    WideEventsASGIMiddleware, exclude_paths=["/healthz"], request_headers=["authorization"]
)


@app.get("/users/{user_id}")
async def user(user_id: int) -> dict[str, int]:
    wideevents.add(**{"user.id": user_id})
    with wideevents.event("db.query"):
        pass
    return {"id": user_id}


@app.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("database said: password=hunter2 rejected")


@app.get("/healthz")
async def health() -> str:
    return "ok"
