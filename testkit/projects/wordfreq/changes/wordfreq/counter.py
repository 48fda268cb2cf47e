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


def top(counts, n):
    """The `n` most common words of `counts` with their counts, most common first.

    Words as common as each other come in alphabetical order. A negative `n` is an error.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, not {n}")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:n]
