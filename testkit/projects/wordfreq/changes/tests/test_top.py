import unittest

from wordfreq import count_words, top


class TopTest(unittest.TestCase):
    def test_most_common_first(self):
        counts = count_words("b a b c b a")
        self.assertEqual(top(counts, 2), [("b", 3), ("a", 2)])

    def test_ties_in_alphabetical_order(self):
        self.assertEqual(top({"pear": 2, "apple": 2, "fig": 2}, 2), [("apple", 2), ("fig", 2)])

    def test_more_than_there_are(self):
        self.assertEqual(top({"one": 1}, 10), [("one", 1)])

    def test_a_negative_n_is_an_error(self):
        with self.assertRaises(ValueError):
            top({"one": 1}, -1)


if __name__ == "__main__":
    unittest.main()
