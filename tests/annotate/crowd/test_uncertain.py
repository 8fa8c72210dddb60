"""Active learning's choice of the next round's pairs (``annotate tasks --uncertain``): the candidates'
feature vectors in k-means clusters, of each cluster the pair nearest the threshold; with more labels, the
largest spread of a committee of trees times the pair's density (what ``least_sure`` does with the store's
labels: tests/annotate/matcher/test_matcher.py, ``test_trains_from_the_crowds_matches``)."""

import numpy as np
import pytest

from m5data.annotate.crowd.uncertain import clusters, committee, density, nearest_threshold, per_cluster, spread
from m5data.config import load


def blobs(seed: int = 0):
    """Three groups of 10 feature vectors far apart (one with a missing value); the first group's scores
    all nearer the threshold 0.5 than any other's."""
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 0.1, (10, 3)), rng.normal(5, 0.1, (10, 3)), rng.normal((0, 5, -5), 0.1, (10, 3))]
    x[3, 0] = np.nan  # taken as its column's median, 0: still in its group
    scores = np.r_[rng.uniform(0.4, 0.6, 10), rng.uniform(0.01, 0.2, 10), rng.uniform(0.85, 0.99, 10)]
    return x, scores


def test_one_pair_of_each_cluster_the_nearest_the_threshold_in_it():
    x, scores = blobs()
    assert set(nearest_threshold(scores, 0.5, 3)) <= set(range(10))  # nearest overall: all of the first group
    got = per_cluster(scores, 0.5, x, 3, seed=0)
    assert sorted(i // 10 for i in got) == [0, 1, 2]  # one of each group
    for i in got:
        group = np.arange(10) + 10 * (i // 10)
        assert i == group[nearest_threshold(scores[group], 0.5, 1)[0]]
    assert list(got) == list(got[nearest_threshold(scores[got], 0.5, 3)])  # nearest first
    assert sorted(np.bincount(clusters(x, 3, seed=0))) == [10, 10, 10]


def test_deterministic_given_the_seed_and_ties_drawn_by_it():
    x, _ = blobs()
    flat = np.full(30, 0.3)  # a model that knows nothing yet (few labels): every pair equally unsure
    a, b = per_cluster(flat, 0.5, x, 3, seed=7), per_cluster(flat, 0.5, x, 3, seed=7)
    assert list(a) == list(b) and sorted(i // 10 for i in a) == [0, 1, 2]
    picks = {tuple(sorted(per_cluster(flat, 0.5, x, 3, seed=s))) for s in range(8)}
    assert len(picks) > 1  # ties are broken by the seed, not always the first of each cluster


def test_as_many_pairs_as_candidates_or_more_is_all_of_them_nearest_first():
    x, scores = blobs()
    assert list(per_cluster(scores[:5], 0.5, x[:5], 9, seed=0)) == list(nearest_threshold(scores[:5], 0.5, 5))
    assert len(per_cluster(scores, 0.5, x, 0, seed=0)) == 0


def test_fewer_distinct_feature_vectors_than_pairs_asked_tops_up_with_the_nearest():
    x = np.r_[np.zeros((6, 2)), np.ones((6, 2))]  # two distinct vectors, 12 pairs
    scores = np.linspace(0.05, 0.95, 12)
    got = per_cluster(scores, 0.5, x, 4, seed=0)
    assert len(set(got)) == 4 and {i // 6 for i in got} == {0, 1}
    assert set(got) == set(nearest_threshold(scores, 0.5, 4))  # both groups' nearest, then the next nearest


def test_committee_asks_where_its_trees_disagree_and_a_dense_pair_before_an_outlier():
    """One feature decides: labels match above 0, four flipped near 0 (where the classes meet). The trees
    of bootstrap draws agree far from 0 and disagree at it; of the pairs at 0, the one with a second
    feature no other pair has (an outlier, the same spread: the labels never vary in it) comes last."""
    matcher = load(None, {}, environ={}).matcher
    xl = np.c_[np.linspace(-3, 3, 61), np.zeros(61)]  # 61 labelled pairs: the trees need 40 for a split
    yl = xl[:, 0] > 0
    yl[[27, 29, 32, 34]] = ~yl[[27, 29, 32, 34]]
    x = np.array([[-5, 0], [0, 0], [0.05, 0], [5, 0], [0, 50], [-4, 0], [4, 0], [0.02, 0]], float)
    sp = spread(xl, yl, x, matcher, np.random.default_rng(0))
    middle, far = [1, 2, 4, 7], [0, 3, 5, 6]
    assert sp[middle].min() > 10 * sp[far].max()
    d = density(x)
    assert d[4] < d[far].min() < d[far].max() < d[[1, 2, 7]].min() and ((0 <= d) & (d <= 1)).all()
    got = committee(xl, yl, x, matcher, 4, np.random.default_rng(0))
    assert set(got[:3]) == {1, 2, 7} and got[3] == 4  # the middle ones, the outlier of them last
    assert list(got) == list(np.argsort(-sp * d, kind="stable")[:4])
    assert list(committee(xl, yl, x, matcher, 4, np.random.default_rng(0))) == list(got)  # deterministic given the rng
    with pytest.raises(ValueError):
        spread(xl, np.ones(61, bool), x, matcher, np.random.default_rng(0))  # one class: no committee


def test_committee_fits_a_draw_that_holds_none_of_a_columns_values():
    """A feature only a few labelled pairs have (a spec most titles lack): a bootstrap draw without them
    has the column empty, which the trees cannot bin; it is taken as 0 in that draw."""
    matcher = load(None, {}, environ={}).matcher
    xl = np.c_[np.linspace(-3, 3, 61), np.full(61, np.nan)]
    xl[30, 1] = 1.0  # one labelled pair has it: some of the draws miss it
    yl = xl[:, 0] > 0
    x = np.array([[-5, np.nan], [0, 1.0], [5, np.nan]])
    got = spread(xl, yl, x, matcher, np.random.default_rng(0), size=8)
    assert got.shape == (3,) and np.isfinite(got).all()
