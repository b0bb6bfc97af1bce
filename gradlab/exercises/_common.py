"""Helpers shared by the exercise checks."""


def say(ok: bool, text: str) -> bool:
    """Print the verdict (``Correct:`` or ``Not yet:`` and ``text``); return ``ok``."""
    print(("Correct: " if ok else "Not yet: ") + text)
    return ok
