"""Sphinx configuration of the course site (built by ``tools/site.py``, ``make site``).

The pages are the course notebooks as last executed: myst-nb renders their stored outputs and
never runs them (``nb_execution_mode = "off"``). ``tools/site.py`` stages the source folder
(a landing page plus ``notebooks/NN_topic.ipynb``, ANSI codes stripped) and points Sphinx here
with ``-c docs``, so a page's path in the source folder is its path in the repository, which is
what the Colab and Binder launch buttons link to.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REPOSITORY, BRANCH = _meta["tool"]["advlab"]["repository"], _meta["tool"]["advlab"]["branch"]

project = "advlab"
author = "the advlab authors"
copyright = "the advlab authors, MIT licence"
html_title = "advlab: adversarial machine learning, hands-on"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
nb_execution_mode = "off"          # render the stored outputs; never execute while building
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_static_path = []
html_favicon = "favicon.svg"       # else every browser asks for /favicon.ico and gets a 404
html_context = {"default_mode": "light"}  # the theme logs an error when no mode is set
html_last_updated_fmt = None
html_copy_source = True            # the download button offers the .ipynb
html_theme_options = {
    "repository_url": f"https://github.com/{REPOSITORY}",
    "repository_branch": BRANCH,
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "launch_buttons": {
        "colab_url": "https://colab.research.google.com",
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    },
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
