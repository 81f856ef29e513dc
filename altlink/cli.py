"""Command line: parses arguments, calls the package, prints."""
import sys


def main(argv=None) -> int:
    print("altlink: not yet", file=sys.stderr)
    return 2
