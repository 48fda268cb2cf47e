"""Word frequencies of a text."""

from .counter import count_words

__all__ = ["count_words"]
