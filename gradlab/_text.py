"""Printed text that fits a notebook: lines of at most :data:`WIDTH` characters, broken between words."""

import textwrap

WIDTH = 88  # JupyterLab breaks longer output lines mid-word in a 1000-px notebook


def wrap(text: str, indent: str = "") -> str:
    """``text`` in lines of at most :data:`WIDTH` characters, broken at spaces only (a word longer
    than a line stays whole); lines after the first start with ``indent``, leading spaces are kept.

    >>> print(wrap("clips 9% of probe steps " * 5, indent="    "))
    clips 9% of probe steps clips 9% of probe steps clips 9% of probe steps clips 9% of probe
        steps clips 9% of probe steps
    >>> wrap("  global_norm: 1.42")
    '  global_norm: 1.42'
    """
    lines = textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)
