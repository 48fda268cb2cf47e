import unittest

from wordfreq import count_words


class CountWordsTest(unittest.TestCase):
    def test_counts_each_word(self):
        self.assertEqual(count_words("a b a"), {"a": 2, "b": 1})

    def test_ignores_case(self):
        self.assertEqual(count_words("The the THE"), {"the": 3})


if __name__ == "__main__":
    unittest.main()
