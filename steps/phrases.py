"""Lists written as a sentence in the Gherkin, read back as the items they name."""
from __future__ import annotations


def listed(text: str) -> list[str]:
    """'"a", "b" and "c"' -> ["a", "b", "c"]; 'SCAN and RANDOMKEY' -> ["SCAN", "RANDOMKEY"]."""
    return [part.strip().strip('"') for part in text.replace(" and ", ", ").split(",") if part.strip()]
