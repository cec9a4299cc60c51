"""Deterministic sample texts for warm-up, calibration and load generation.

Every word below is a single WordPiece token of the MiniLM (bert-base-uncased) vocabulary, so
`sample_texts(n, tokens=16)` gives texts of exactly 16 tokens with [CLS] and [SEP] (a test
checks this), the size at which the demo profiles are measured.
"""

from __future__ import annotations

import random

WORDS: tuple[str, ...] = (
    "the", "food", "was", "really", "good", "and", "service", "slow", "but", "staff",
    "friendly", "room", "clean", "great", "bad", "movie", "story", "boring", "price", "fair",
    "would", "not", "come", "back", "again", "very", "happy", "with", "this", "product",
    "it", "broke", "after", "one", "week", "love", "hate", "best", "worst", "ever",
    "quite", "nice", "place", "to", "stay", "terrible", "experience", "excellent", "quality",
    "delivery", "late", "fast", "poor", "support", "team", "helpful", "rude", "waiter",
)  # fmt: skip


def sample_texts(n: int, tokens: int = 16, seed: int = 0) -> list[str]:
    """`n` texts of `tokens` tokens each (counting [CLS] and [SEP])."""
    if tokens < 3:
        raise ValueError("tokens must be at least 3 ([CLS], one word, [SEP])")
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(tokens - 2)) for _ in range(n)]
