"""`python3 -m wordfreq FILE [-n N]`: the most common words of a file."""

import argparse
import sys

from .counter import count_words, top


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(prog="python3 -m wordfreq", description=__doc__)
    parser.add_argument("file", help="the text to count; - reads standard input")
    parser.add_argument("-n", type=int, default=10, help="how many words (default 10)")
    args = parser.parse_args(argv)
    if args.file == "-":
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as file:
            text = file.read()
    for word, count in top(count_words(text), args.n):
        print(f"{count:>7} {word}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
