"""``python -m gradlab report ...``: see :mod:`gradlab.report`."""

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("report",):
        print("usage: python -m gradlab report [--problem P] [--modes m1,m2=t,...] [--steps N] [--out FILE]")
        return 2
    from gradlab.display.report import main as report

    return report(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
