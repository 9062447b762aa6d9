"""What every page of the book shares: the plot style and a few small helpers.

Each chapter's first code cell imports from this module instead of pasting
the same lines::

    sys.path.append(str(Path(kflib.__file__).parents[1] / "book"))
    from _course import glue_number, rmse, use_book_style

    use_book_style()

The book build runs each page with ``book/`` as the working directory, where
``import _course`` finds this file at once; the ``sys.path`` line (the folder
beside the ``kflib`` package of the repository) lets the same cell run from any
other folder, e.g. ``jupytext --execute book/01-state-space.md -o /tmp/01.ipynb``.

The file is not a page of the book: only the files named in ``_toc.yml`` are
built (``only_build_toc_files`` in ``_config.yml``), and a ``.py`` file is not a
source the book reads. ``tests/test_course_helper.py`` checks its behaviour.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from myst_nb import glue

__all__ = ["BOOK_STYLE", "glue_number", "plain_number", "rmse", "use_book_style"]

#: matplotlib settings of every figure in the book: a wide, short figure
#: (a time series fills the page's width), a light grid, no top or right frame.
BOOK_STYLE = {
    "figure.figsize": (9, 3.4),
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib's current settings.

    Figures created afterwards take the style; ``matplotlib.rc_context()``
    undoes it on exit.
    """
    mpl.rcParams.update(BOOK_STYLE)


def plain_number(value):
    """``value`` as a plain Python ``bool``, ``int`` or ``float``.

    A NumPy scalar or a 0-d or one-element array (anything with a one-number
    ``.item()``) becomes the Python number it holds (``np.int64(3)`` gives ``3``,
    ``np.float64(0.5)`` gives ``0.5``), so that the text shows ``3`` and not
    ``np.int64(3)``. Anything else raises ``TypeError``.

    >>> plain_number(np.int64(3)), plain_number(np.array([0.25])), plain_number(2.0)
    (3, 0.25, 2.0)
    """
    if type(value) in (bool, int, float):
        number = value
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            number = value.item()
        except (ValueError, RuntimeError) as exc:      # more than one number
            raise TypeError(f"value must hold one number: {exc}") from None
    else:
        raise TypeError(f"value must be a number, got {type(value).__name__} {value!r}")
    if not isinstance(number, (bool, int, float)):
        raise TypeError(f"value must be a real number, got {type(number).__name__} {number!r}")
    return number


def glue_number(name: str, value) -> None:
    """Store ``value`` under ``name`` for the text, as a plain Python number.

    The page then shows it with ``{glue:text}`name:.2f```. Nothing is
    displayed in the cell (``display=False``).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    glue(name, plain_number(value), display=False)


def rmse(estimate, truth, axis=None):
    """Root-mean-square difference of ``estimate`` and ``truth``.

    Over all entries (``axis=None``, a scalar) or along ``axis`` (an array);
    the two broadcast against each other.

    >>> float(rmse([1.0, 3.0], [0.0, 0.0]))
    2.23606797749979
    """
    diff = np.asarray(estimate) - np.asarray(truth)
    return np.sqrt(np.mean(diff**2, axis=axis))
