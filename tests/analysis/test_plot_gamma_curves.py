"""analysis.plots.plot_gamma_curves: accuracy / Macro-F1 by γ, with the 95% bands shaded when given."""

from __future__ import annotations

import matplotlib.image as mpimg
import pytest

from analysis.evaluation import GammaScore
from analysis.plots import plot_gamma_curves

CURVES = {
    "real": [GammaScore(0.5, 100, 0.70, 0.65), GammaScore(0.8, 60, 0.80, 0.74), GammaScore(1.0, 30, 0.90, 0.85)],
    "zero-shot": [GammaScore(0.5, 100, 0.50, 0.45), GammaScore(0.8, 60, 0.60, 0.52), GammaScore(1.0, 30, 0.72, 0.66)],
}
BANDS = {name: [(s.gamma, (s.accuracy - 0.08, s.accuracy + 0.08), (s.macro_f1 - 0.1, s.macro_f1 + 0.1)) for s in scores]
         for name, scores in CURVES.items()}


def tinted_pixels(path) -> int:
    """Pixels that are neither white nor grey (lines, markers and shaded bands)."""
    rgb = mpimg.imread(path)[..., :3]
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return int((spread > 0.05).sum())


def test_bands_are_shaded_around_each_curve(tmp_path):
    plain = plot_gamma_curves(CURVES, tmp_path / "plain.png")
    banded = plot_gamma_curves(CURVES, tmp_path / "banded.png", bands=BANDS)
    assert banded.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the shaded areas (±8 and ±10 points around four lines) tint far more pixels than the lines alone
    assert tinted_pixels(banded) > 3 * tinted_pixels(plain)
    # a band given for one curve only, with a missing point, still draws
    partial = {"real": [(0.5, (0.6, 0.8), None), (0.8, None, None), (1.0, (0.8, 1.0), (0.7, 0.95))]}
    some = plot_gamma_curves(CURVES, tmp_path / "partial.png", bands=partial)
    assert tinted_pixels(plain) < tinted_pixels(some) < tinted_pixels(banded)


def test_empty_curves_are_refused():
    with pytest.raises(ValueError, match="no scores to plot"):
        plot_gamma_curves({"empty": [GammaScore(0.9, 0, None, None)]}, "unused.png")
