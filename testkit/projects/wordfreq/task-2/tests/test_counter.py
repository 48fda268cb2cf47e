import unittest

from wordfreq import count_words


class CountWordsTest(unittest.TestCase):
    def test_counts_each_word(self):
        self.assertEqual(count_words("a b a"), {"a": 2, "b": 1})

    def test_ignores_case(self):
        self.assertEqual(count_words("The the THE"), {"the": 3})

    def test_keeps_words_in_lower_case(self):
        self.assertEqual(list(count_words("Hello")), ["hello"])

    def test_punctuation_is_not_part_of_a_word(self):
        self.assertEqual(count_words("end. End, (end)!"), {"end": 3})

    def test_apostrophes_inside_a_word_stay(self):
        self.assertEqual(count_words("don't 'tis"), {"don't": 1, "tis": 1})


if __name__ == "__main__":
    unittest.main()
