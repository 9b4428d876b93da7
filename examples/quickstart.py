"""The README's quickstart: a few wide events, printed as JSON lines."""

import random
import time

import wideevents
from wideevents.sinks import JsonLinesSink

wideevents.configure("shop", version="1.4.2", sinks=[JsonLinesSink("-")])


@wideevents.event("load_cart")
def load_cart(user_id: int) -> list[int]:
    wideevents.add(db_rows=3)
    time.sleep(0.002)
    return [1, 2, 3]


for user_id in (17, 42):
    with wideevents.event("checkout", user_id=user_id, password="hunter2") as ev:
        cart = load_cart(user_id)
        ev["cart.items"] = len(cart)
        ev.incr("payment.attempts")
        with ev.timer("payment.ms"):
            time.sleep(random.uniform(0.001, 0.003))

wideevents.flush()
