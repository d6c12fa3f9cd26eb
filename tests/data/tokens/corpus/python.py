import json
from dataclasses import dataclass, field


@dataclass
class Price:
    input: float
    output: float
    cache_read: float | None = None
    tags: list[str] = field(default_factory=list)

    def cost(self, usage: dict[str, int]) -> float:
        """Dollars for one call."""
        billed = usage.get("input_tokens", 0) * self.input
        billed += usage.get("cache_read_input_tokens", 0) * (self.cache_read or self.input)
        return (billed + usage["output_tokens"] * self.output) / 1_000_000


if __name__ == "__main__":
    p = Price(3.0, 15.0, 0.3)
    print(json.dumps({"usd": round(p.cost({"input_tokens": 50_000, "output_tokens": 50_000}), 6)}))
    for i, (k, v) in enumerate(sorted({"b": 2, "a": 1}.items())):
        print(f"{i:02d} {k!r}={v:>4}")  # noqa: T201
