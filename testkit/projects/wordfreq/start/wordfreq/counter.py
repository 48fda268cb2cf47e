"""Counting the words of a text."""

import re

_WORD = re.compile(r"\S+")


def count_words(text):
    """Return a dict mapping each word of `text` to how often it occurs."""
    counts = {}
    for word in _WORD.findall(text):
        counts[word] = counts.get(word, 0) + 1
    return counts
