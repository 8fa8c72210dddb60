"""The matcher on Chinese shop titles (issue 58): what it reads in a title (shop prefixes and promotion
words dropped, brand aliases learnt from the store, net content and pack counts, stage numbers), each
parser on real titles of the MEP-3M sample, and training from few labels."""

import numpy as np

from m5data.annotate.matcher.training import fit
from m5data.config import load as load_settings


def test_few_labels_train_when_a_feature_is_missing_from_a_fold():
    """With 50 labels a feature seen on 2 pairs is absent from some inner folds' training part: each fold
    fits without it (it was a ValueError from the trees' binning, the whole training refused)."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(20), np.zeros(30)].astype(bool)
    x = np.c_[y + rng.normal(0, 0.6, 50), np.full(50, np.nan)]
    x[[0, 25], 1] = [1.0, 0.0]  # the only two pairs with this evidence, one product's: held out together
    groups = np.arange(50)
    groups[25] = 0
    s = load_settings(None, {"matcher.trees": 20}, environ={})
    model = fit(x, y, np.ones(50), groups, s, "few").model
    assert model.features[:2] == ["title_char_cos", "title_word_cos"] and 0.5 < model.validation["auc"] <= 1.0
