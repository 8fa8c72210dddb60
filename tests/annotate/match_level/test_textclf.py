"""match-level's hashed caption classifier (annotate/match_level/textclf.py) and its image votes by exact search."""

import numpy as np
import pyarrow as pa

from m5data.annotate.match_level import textclf
from m5data.annotate.match_level.job import image_votes


def _features(words):
    feats = textclf.Features()
    feats.append(*textclf.hash_batch(pa.array([" ".join(w) for w in words]), pa.array(words), 1 << 16))
    return feats.close()


def test_hash_batch_counts_words_and_character_ngrams():
    indptr, cols, tf, nword = textclf.hash_batch(pa.array(["abc abc", None, "茶具"]), pa.array([["abc", "abc"], None, ["茶具"]]), 1 << 20)
    # "abc abc": one word (twice: 1 + log 2), characters a b c ' ' + ab bc 'c ' ' a' + abc 'bc ' 'c a' ' ab'
    assert list(np.diff(indptr)) == [13, 0, 1 + 3] and list(nword) == [1, 0, 1]
    assert np.isclose(tf[0], 1 + np.log(2))
    again = textclf.hash_batch(pa.array(["abc abc", None, "茶具"]), pa.array([["abc", "abc"], None, ["茶具"]]), 1 << 20)
    assert np.array_equal(again[1], cols)  # the same captions hash the same (a re-run writes the same rows)


def _world(n=3000, classes=4, subs=3, seed=0):
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, classes, n)
    sub = rng.integers(0, subs, n)
    words = [[f"w{c}_{s}_{rng.integers(0, 3)}", f"c{c}_{rng.integers(0, 4)}", f"n{rng.integers(0, 500)}"]
             for c, s in zip(cls, sub)]
    return _features(words), textclf.Hierarchy(cls.astype(np.int32), (cls * 100 + sub).astype(np.int32))


def test_hierarchical_model_agrees_with_true_labels_and_not_with_swapped_ones():
    feats, h = _world()
    train, test = np.arange(2400), np.arange(2400, 3000)
    idf = textclf.idf(textclf.doc_freq(feats, np.where(np.arange(3000) < 2400, 0, -1), 1, 1 << 16)[0], 2400)
    model = textclf.Model(h, 16, 18)
    model.fit(feats, idf, train, h.sub, epochs=5, lr=0.5, alpha=1e-4, seed=0)
    none = np.full((len(test), 1), -1, np.int64), np.zeros((len(test), 1), np.float32)
    cls, sub, img = model.score(feats, idf, test, h.sub, *none)
    assert np.mean(cls > 0.9) > 0.95 and np.mean(sub > 0.9) > 0.9
    assert np.isnan(img).all()  # no votes: no image agreement
    true_cls = h.cls.copy()
    h.cls[test] = (h.cls[test] + 1) % h.n_class  # captions now name another class
    wrong, _, _ = model.score(feats, idf, test, np.full(len(h.cls), -1, np.int32), *none)
    h.cls[:] = true_cls
    assert np.nanmax(wrong) < 0.2


def test_the_pruned_top_subclass_is_the_true_top():
    """The sub-class score's denominator, found by visiting classes by falling P(class), is the exact
    max over every (class, sub-class): asking for each pair as the own label, the best ratio is 1, none above."""
    feats, h = _world(n=600, classes=5, subs=4, seed=1)
    rows = np.arange(600)
    idf = np.ones(1 << 16, np.float32)
    model = textclf.Model(h, 16, 18)
    model.fit(feats, idf, rows[:300], h.sub, epochs=1, lr=0.3, alpha=1e-4, seed=0)  # a weak model: no 1-hot probabilities
    test = rows[300:340]
    none = np.full((len(test), 1), -1, np.int64), np.zeros((len(test), 1), np.float32)
    true_cls, true_sub = h.cls.copy(), h.sub.copy()
    best = np.zeros(len(test))
    for c in range(h.n_class):
        for s in range(int(h.n_child[c])):
            h.cls[test] = c
            own = h.sub.copy()
            own[test] = s
            _, ratio, _ = model.score(feats, idf, test, own, *none)
            assert (ratio <= 1 + 1e-6).all()
            best = np.maximum(best, ratio)
    h.cls[:], h.sub[:] = true_cls, true_sub
    assert np.allclose(best, 1.0, atol=1e-6)


def test_image_votes_come_from_other_labelled_products_of_the_gallery():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)).astype(np.float32)
    labels = np.repeat(np.array([10, 20, 30], np.int32), 40)
    desc = centres[labels // 10 - 1] + 0.05 * rng.normal(size=(120, 16)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    labels[5] = -1  # an unlabelled product is searched for, never a neighbour
    has = np.ones(120, bool)
    has[7] = False  # no image: no votes
    vote, weight = image_votes(desc, has, labels, 5)
    assert (vote[7] == -1).all() and (weight[7] == 0).all()
    ok = np.arange(120) != 7
    own_class = np.repeat(np.array([10, 20, 30]), 40)
    assert (vote[ok] == own_class[ok, None]).all()  # nearest products are of the same (clustered) class
    assert np.allclose(weight[ok].sum(axis=1), 1.0)
    assert not (vote == -1)[ok].any()  # the unlabelled product (label -1) is never a neighbour
    small, _ = image_votes(desc, has, labels, 5, gallery=30, seed=1)  # a sampled gallery: still the own class
    assert (small[ok] == own_class[ok, None]).all()
