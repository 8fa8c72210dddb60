"""The matcher's trees: the classifier that training, the cascade and the crowd's committee fit, and the one-thread
context their fits run in."""

from __future__ import annotations


def classifier(a, seed: int):
    """The matcher's gradient-boosted trees with the ``[matcher]`` settings ``a``, seeded by ``seed``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=a.trees, learning_rate=a.learning_rate,
                                          max_leaf_nodes=a.leaves, l2_regularization=1.0,
                                          early_stopping=False, random_state=seed)


def one_thread():
    """A context of one OpenMP thread for the trees' fits, entered once the trees' compiled code is
    loaded: threadpoolctl limits the OpenMP runtimes loaded when the limit is set, and scikit-learn's
    tree code brings its own when first imported. Imported inside the limit (a fresh process's first
    training), the fits ran with every thread: Amazon-Google's training took 185-221 s at load 2-3
    against 10 s with one thread, the trees' split search spinning for threads another process held."""
    import sklearn.ensemble  # noqa: F401 (its OpenMP runtime loaded before the limit)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="openmp")
