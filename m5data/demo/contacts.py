"""Contact details in a few demo listings (``WorldConfig.contact_products``, off by default): what an
export's personal-data masking must catch (m5data/masking.py). The truth's ``contacts`` table lists each."""

from __future__ import annotations

import random

# (kind, where, property of a spec row or None for the title, text maker); one after another, so that
# five or more products carry every kind
_TEMPLATES = (
    ("phone", None, lambda r: f"客服1{r.choice('3578')}{r.randrange(10 ** 9):09d}"),
    ("contact", None, lambda r: f"加V vx{r.randrange(10 ** 6):06d}"),
    ("email", "客服邮箱", lambda r: f"service{r.randrange(1000)}@example.com"),
    ("contact", "售后QQ", lambda r: f"QQ: {r.randrange(10 ** 7, 10 ** 9)}"),
    ("phone", "售后电话", lambda r: f"400-{r.randrange(100, 1000)}-{r.randrange(1000, 10000)}"),
)


def add_contacts(cfg, products: list) -> None:
    """Give ``cfg.contact_products`` listings (whole pages only) a contact detail in the title or a
    spec row, recorded in each product's ``contacts``; drawn from a generator of their own, so the
    rest of the world is the same with or without them."""
    rng = random.Random(f"contacts-{cfg.seed}")
    whole = [p for p in products if p.page_fault == "none" and p.title]
    for i, p in enumerate(rng.sample(whole, min(cfg.contact_products, len(whole)))):
        kind, prop, make = _TEMPLATES[i % len(_TEMPLATES)]
        text = make(rng)
        if prop is None:
            p.title = f"{p.title} {text}"
        else:
            p.specs = [*p.specs, (prop, text)]
        p.contacts.append({"kind": kind, "field": "title" if prop is None else f"spec:{prop}", "text": text})
