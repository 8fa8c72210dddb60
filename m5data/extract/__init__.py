"""The extract stage: 1-fps frames, mp3 + MFCC, normalised images, cleaned and segmented captions.

Modules: ``video`` (ffprobe, frame pass), ``audio`` (moviepy mp3, MFCC blocks), ``image``
(normalisation, tiers, phash), ``text`` (caption cleaning, jieba), ``jobs`` (one item each, run in
worker processes), ``run`` (selection, pool, table writes: :func:`m5data.extract.run.run`),
``cli`` (the ``m5data extract`` verb). See docs/extract.md.
"""
