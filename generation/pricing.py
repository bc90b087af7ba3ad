"""Price table for cost estimates: USD per one million tokens (input, output).

The numbers are list prices of the OpenAI API as published for these models (standard tier;
the Batch API costs half). Prices change: pass your own with `--price-in/--price-out` (or
`GenerationConfig.price_in/price_out`), which take precedence. Local models cost nothing.
A model not in the table gets no estimate (None), never a made-up one.
"""

from __future__ import annotations

from dataclasses import dataclass

#: model name prefix -> (USD per 1M input tokens, USD per 1M output tokens). Longest prefix wins.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
}


@dataclass(frozen=True)
class Price:
    """USD per one million input and output tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """Return the cost in USD of this many input and output tokens."""
        return (tokens_in * self.input_per_million + tokens_out * self.output_per_million) / 1_000_000


def price_for(backend: str, model: str, price_in: float | None = None, price_out: float | None = None) -> Price | None:
    """Return the price of `model` on `backend`: explicit prices if both given, 0 for the local
    backend, the table's entry for the longest matching prefix (halved for "openai-batch"), else
    None (unknown)."""
    if price_in is not None or price_out is not None:
        if price_in is None or price_out is None:
            raise ValueError("give both the input and the output price (USD per 1M tokens)")
        if price_in < 0 or price_out < 0:
            raise ValueError("prices must be >= 0")
        return Price(price_in, price_out)
    if backend == "local":
        return Price(0.0, 0.0)
    matches = [p for p in PRICES if model.startswith(p)]
    if not matches:
        return None
    price_in, price_out = PRICES[max(matches, key=len)]
    if backend == "openai-batch":  # the Batch API costs half
        return Price(price_in / 2, price_out / 2)
    return Price(price_in, price_out)
