"""What every extract worker imports, loaded once in the pool's fork server (see ``pool.pool_context``).

Importing librosa's feature code loads numba-compiled kernels (about 2 CPU-s a process with a warm
numba cache, 20 s with a cold one) and numpy, scipy, Pillow, OpenCV and jieba's dictionary add
about a second more. Spawned workers paid that each, every run; workers forked from a server that has
done it once start with it done.
"""

from __future__ import annotations

import numpy as np

from . import audio, image, jobs, text, video  # noqa: F401  (the job code itself)


def _warm() -> None:
    import cv2  # noqa: F401  (faces; its threads start at the first detection, in a worker, never here)
    import jieba
    import PIL.Image  # noqa: F401
    import scipy.fftpack  # noqa: F401  (imagehash.phash imports it at its first call: ~0.4 CPU-s)

    jieba.setLogLevel(60)
    jieba.dt.initialize()  # the default dictionary (a user dictionary is still loaded per worker)
    # one MFCC block: imports librosa's spectral and filter code and loads its numba kernels
    audio.mfcc_blocks(np.zeros(2205, np.float32), 1, sample_rate=22_050)


try:
    _warm()
except Exception:  # noqa: BLE001  a worker that imports these itself still works, only slower
    pass
