"""Word frequencies of a text."""

from .counter import count_words, top

__all__ = ["count_words", "top"]
