"""``python tests/support/moto_main.py -H HOST -p PORT``: moto's own server (``moto.server.main``), with
the two lookups it repeats on every request answered once.

moto finds the service of each request by listing its package folder (``list_of_moto_modules``: a
``listdir`` and an ``isdir`` of ~150 folders) and then matching the host against a few hundred URL
patterns (``get_backend_for_host``): 22% of the server's CPU in an S3 test (py-spy, 2026-11-29), about
a fifth of the ~100 CPU-s the suite's moto servers spent. Both answers depend only on the installed
package and the host string, so they are kept after the first request; the S3 API, its IAM checks
and the request log are moto's, unchanged.
"""

from __future__ import annotations

import functools

from moto import backends
from moto.moto_server import werkzeug_app


def _remember_lookups() -> None:
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    dispatcher = werkzeug_app.DomainDispatcherApplication
    dispatcher.get_backend_for_host = functools.lru_cache(maxsize=256)(dispatcher.get_backend_for_host)


if __name__ == "__main__":
    _remember_lookups()
    from moto.server import main

    main()
