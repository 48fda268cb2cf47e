"""Counting the words of a text."""

import re

# Letters, digits and apostrophes; anything else separates words.
_WORD = re.compile(r"[\w']+")


def words(text):
    """The words of `text`, in lower case, without apostrophes at their ends."""
    for match in _WORD.finditer(text):
        word = match.group().strip("'").lower()
        if word:
            yield word


def count_words(text):
    """Return a dict mapping each word of `text`, in lower case, to how often it occurs."""
    counts = {}
    for word in words(text):
        counts[word] = counts.get(word, 0) + 1
    return counts
