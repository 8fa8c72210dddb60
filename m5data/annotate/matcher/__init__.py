"""The matcher stage (issue 39): training the learned same-product matcher from crowd labels or a labels
file (``job``, ``training``; ``cascade`` dedup's cheap first test), scoring pairs.

Its model, as data, is here too and is what it publishes: ``model`` (the model file: trees, linear part,
cascade, load and score), ``features`` the pair features (``spaces`` the products' TF-IDF spaces,
``char_grams_jit`` / ``features_jit`` their compiled loops, ``text`` / ``title`` what is read in a title),
``products`` the products as the matcher reads them, ``trees`` / ``trees_jit`` the gradient-boosted trees,
``linear`` the linear part, ``labels`` the crowd's matches as labelled pairs. dedup applies the model,
the crowd's active learning scores with it. docs/annotate.md "Matcher"."""
