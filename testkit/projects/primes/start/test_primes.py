"""The check a change must pass before it is measured at all."""
import unittest

from primes import count_primes


class CountPrimes(unittest.TestCase):
    def test_small(self):
        self.assertEqual([count_primes(n) for n in range(0, 13)], [0, 0, 0, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5])

    def test_known_counts(self):
        self.assertEqual(count_primes(100), 25)
        self.assertEqual(count_primes(30_000), 3245)


if __name__ == "__main__":
    unittest.main()
