"""The path through the notebooks: 00 links every notebook, each links onward, no link is broken.

Markdown cells only (the links a reader clicks); read as JSON, nothing is run.
"""

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NUMBERED = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
FIRST = "00_start_here.ipynb"
# [text](target) and ![alt](target), with an optional "title"; <a href="..."> and <img src="...">
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")


def markdown(name: str) -> list[str]:
    cells = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def links(text: str) -> list[str]:
    return MD_LINK.findall(text) + HTML_LINK.findall(text)


def local(target: str) -> str | None:
    """The local path a link points to (None for a web address, an e-mail or an anchor in the page)."""
    url = urlparse(target)
    if url.scheme or url.netloc or not url.path:
        return None
    return unquote(url.path)


def notebook_links(text: str) -> list[str]:
    """The numbered notebooks ``text`` links to, in order."""
    out = []
    for target in links(text):
        path = local(target)
        if path is not None and Path(path).name in NUMBERED and Path(path).name not in out:
            out.append(Path(path).name)
    return out


def onward(name: str) -> str | None:
    """The notebook the last cell links onward to: the first numbered one that is not this one or the map."""
    last = markdown(name)[-1]
    ahead = [n for n in notebook_links(last) if n not in (name, FIRST)]
    return ahead[0] if ahead else None


def test_there_are_numbered_notebooks():
    assert FIRST in NUMBERED and len(NUMBERED) >= 12


def test_first_notebook_links_every_other_one():
    linked = set(notebook_links("\n".join(markdown(FIRST))))
    missing = sorted(set(NUMBERED) - {FIRST} - linked)
    assert not missing, f"{FIRST} does not link to {missing}"


def test_following_the_onward_links_from_the_first_visits_every_notebook():
    path, name = [FIRST], onward(FIRST)
    while name is not None and name not in path:
        assert (NOTEBOOKS / name).exists()
        path.append(name)
        name = onward(name)
    assert sorted(path) == NUMBERED, f"the path {path} misses {sorted(set(NUMBERED) - set(path))}"
    assert name is None, f"{path[-1]} links onward to {name}, already on the path"
    assert path.index("10_choose_a_threshold.ipynb") < path.index("11_per_example_clipping.ipynb")


@pytest.mark.parametrize("name", NUMBERED)
def test_every_notebook_ends_with_a_link_to_another_notebook(name):
    last = markdown(name)[-1]
    assert notebook_links(last), f"{name}: its last markdown cell links to no notebook"
    cells = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]
    assert cells[-1]["cell_type"] == "markdown", f"{name} does not end with a markdown cell"


@pytest.mark.parametrize("name", NUMBERED)
def test_no_link_points_to_a_missing_file(name):
    broken = []
    for text in markdown(name):
        for target in links(text):
            path = local(target)
            if path is not None and not (NOTEBOOKS / path).exists():
                broken.append(target)
    assert not broken, f"{name} links to files that do not exist: {broken}"


def test_the_link_finder_finds_links():  # the checks above assert nothing if it finds none
    text = (
        'See [01](01_exploding_gradients.ipynb), ![fig](img/a.png "t"), <a href="x.md#top">x</a>, [web](https://a.b/c)'
    )
    assert links(text) == ["01_exploding_gradients.ipynb", "img/a.png", "https://a.b/c", "x.md#top"]
    assert [local(t) for t in links(text)] == ["01_exploding_gradients.ipynb", "img/a.png", None, "x.md"]
    assert notebook_links(text) == ["01_exploding_gradients.ipynb"]
