"""Labelled question pairs made from templates, so verifier tests need no external data.

Same meaning: one question in two phrasings. Not the same: one word changed that
changes the question (the thing asked about, or what to do with it).
"""

import random

SUBJECTS = [
    "password", "invoice", "subscription", "account", "email address", "billing plan", "API key", "team members",
    "payment method", "profile photo", "language", "time zone", "notification settings", "two-factor login",
    "data export", "refund", "order", "delivery address", "coupon", "username",
]  # fmt: skip
PHRASINGS = [
    ("How do I change my {s}?", "How can I change my {s}?", "How do I delete my {s}?"),
    ("Where can I find my {s}?", "Where is my {s} shown?", "Where can I find my {t}?"),
    ("Can I remove my {s}?", "Is it possible to remove my {s}?", "Can I remove my {t}?"),
    ("Why can't I update my {s}?", "Why am I unable to update my {s}?", "Why can't I update my {t}?"),
    ("Who can see my {s}?", "Which people are able to see my {s}?", "Who can edit my {s}?"),
]


def labelled_pairs(seed: int = 0) -> list[dict]:
    """About 200 pairs, both labels, in a seeded order: {text_a, text_b, label}."""
    rng = random.Random(seed)
    rows = []
    for subject in SUBJECTS:
        for question, same, different in PHRASINGS:
            other = rng.choice([s for s in SUBJECTS if s != subject])
            rows.append({"text_a": question.format(s=subject), "text_b": same.format(s=subject), "label": 1})
            rows.append(
                {"text_a": question.format(s=subject), "text_b": different.format(s=subject, t=other), "label": 0}
            )
    rng.shuffle(rows)
    return rows
