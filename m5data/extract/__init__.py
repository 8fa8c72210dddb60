"""The extract stage: 1-fps frames, mp3 + MFCC, normalised images, cleaned and segmented captions.

Modules: ``ffmpeg`` (the tools, MediaError), ``probe`` (ffprobe), ``video`` (frame pass: the frames folder),
``ffmpeg_frames`` (the ffmpeg process of the frame pass), ``audio``
(moviepy mp3, MFCC blocks), ``image`` (normalisation, tiers, phash), ``text`` (caption cleaning,
jieba), ``jobs`` (one item each, run in worker processes), ``derived`` (the rows a job returns),
``worker`` (a worker process's context), ``pool`` (worker processes, crash quarantine), ``run``
(selection, table writes: :func:`m5data.extract.run.run`), ``cli`` (the ``m5data extract`` verb).
See docs/extract.md.
"""
