"""`analysis.plots.plot_ranking`: the one ranking plot (study report and `subjlab rank --plot`).

The PNGs are read back as pixels: the highlighted task's colour must appear exactly where that
task's row is drawn (the most objective task on top), and nowhere when nothing is highlighted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from analysis.plots import HIGHLIGHT_COLOUR, plot_ranking
from analysis.ranking import BradleyTerryRanker
from analysis.simulate import SimulatedCrowd, random_pairs

TRUTH = {"ag_news": 1.6, "sms_spam": 1.0, "imdb": 0.3, "tweet_irony": -1.2, "humor": -1.7}


@pytest.fixture(scope="module")
def ranked():
    """A real Bradley–Terry ranking (with bootstrap intervals) of simulated crowd judgments."""
    judgments = SimulatedCrowd(TRUTH, seed=0, spammer_share=0.0).judge_pairs(random_pairs(sorted(TRUTH), 200, seed=0))
    return BradleyTerryRanker(n_bootstrap=100, seed=0).fit(judgments).ranking()


def highlight_rows(png) -> np.ndarray:
    """Return the image-row indices (0 = top) of pixels in the highlight colour, and the image height."""
    import matplotlib.image as mpimg

    image = mpimg.imread(png)[:, :, :3]
    target = np.array([int(HIGHLIGHT_COLOUR[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    close = np.all(np.abs(image - target) < 0.06, axis=2)
    return np.nonzero(close)[0], image.shape[0]


def test_no_highlight_draws_no_pixel_in_the_highlight_colour(tmp_path, ranked):
    png = plot_ranking(ranked, tmp_path / "plain.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows, _ = highlight_rows(png)
    assert rows.size == 0


def test_highlighted_most_objective_task_is_drawn_at_the_top(tmp_path, ranked):
    assert ranked[0].task == "ag_news"  # rank 1
    rows, height = highlight_rows(plot_ranking(ranked, tmp_path / "top.png", highlight="ag_news"))
    assert rows.size > 50
    assert np.median(rows) < 0.4 * height


def test_highlighted_most_subjective_task_is_drawn_at_the_bottom(tmp_path, ranked):
    assert ranked[-1].task == "humor"
    rows, height = highlight_rows(plot_ranking(ranked, tmp_path / "bottom.png", highlight="humor"))
    assert rows.size > 50
    assert np.median(rows) > 0.6 * height


def test_rows_without_rank_n_or_interval_are_ordered_by_score(tmp_path):
    @dataclass
    class Row:  # only what the plot needs: no rank, no n, one row without an interval
        task: str
        score: float
        ci_low: float | None = None
        ci_high: float | None = None

    rows = [Row("humor", -0.9, -1.4, -0.5), Row("ag_news", 1.2), Row("imdb", 0.4, 0.0, 0.9)]
    found, height = highlight_rows(plot_ranking(rows, tmp_path / "rows.png", highlight="ag_news"))
    assert found.size > 20 and np.median(found) < 0.4 * height  # highest score on top


def test_empty_ranking_and_unknown_highlight_are_errors(tmp_path, ranked):
    with pytest.raises(ValueError, match="no ranked tasks"):
        plot_ranking([], tmp_path / "none.png")
    with pytest.raises(ValueError, match="cannot highlight 'mine': not among the ranked tasks"):
        plot_ranking(ranked, tmp_path / "x.png", highlight="mine")
    assert not (tmp_path / "x.png").exists()
