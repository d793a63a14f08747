"""What the tokens a run spent cost, at the prices the config states (an API teacher's bill).

The prices are the user's (`engine.price_per_1m_input_tokens` / `engine.price_per_1m_output_tokens`),
never looked up: providers change them, and a self-hosted server has none. Without both prices
there is no estimate (None), rather than a number that counts only half the bill.
"""

from __future__ import annotations

# Micro-dollars: a few test requests cost fractions of a cent, and sums stay exact enough.
COST_DECIMALS = 6


def prices_per_1m(engine) -> dict[str, float] | None:
    """{"input": $/1M prompt tokens, "output": $/1M generated tokens}, or None when either is unset."""
    price_in = getattr(engine, "price_per_1m_input_tokens", None)
    price_out = getattr(engine, "price_per_1m_output_tokens", None)
    if price_in is None or price_out is None:
        return None
    return {"input": float(price_in), "output": float(price_out)}


def cost_usd(engine, tokens_in: int, tokens_out: int) -> float | None:
    """Dollars for `tokens_in` prompt and `tokens_out` generated tokens; None without prices."""
    prices = prices_per_1m(engine)
    if prices is None:
        return None
    return round((tokens_in * prices["input"] + tokens_out * prices["output"]) / 1e6, COST_DECIMALS)


def format_usd(dollars: float | None) -> str:
    """$1,234.56 for a real bill, $0.000123 for a test's fraction of a cent, '–' when unknown."""
    if dollars is None:
        return "–"
    if dollars >= 1 or dollars == 0:
        return f"${dollars:,.2f}"
    return f"${dollars:.{COST_DECIMALS}f}".rstrip("0")


__all__ = ["COST_DECIMALS", "cost_usd", "format_usd", "prices_per_1m"]
