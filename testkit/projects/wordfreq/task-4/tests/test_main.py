import io
import os
import tempfile
import unittest

from wordfreq.__main__ import main


class MainTest(unittest.TestCase):
    def test_prints_the_most_common_words_of_a_file(self):
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "text.txt")
            with open(path, "w", encoding="utf-8") as file:
                file.write("to be or not to be")
            out = io.StringIO()
            self.assertEqual(main([path, "-n", "2"], out=out), 0)
        self.assertEqual(out.getvalue(), "      2 be\n      2 to\n")


if __name__ == "__main__":
    unittest.main()
