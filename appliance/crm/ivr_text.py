"""The caller's way through the IVR, in words for the people who read cards, histories and call lists."""
from __future__ import annotations


def describe_path(path: list[dict]) -> str:
    """The caller's choices in words for people: "pressed 2: billing; pressed 1: extension 201"."""
    parts = []
    for step in path:
        if "action" in step and "key" in step:
            parts.append(f"pressed {step['key']}: {step.get('label') or step['action']}")
        elif step.get("event") in ("closed", "fallback"):
            parts.append("out of hours" if step["event"] == "closed" else f"no choice: {step.get('action', '')}")
    return "; ".join(parts)
