"""Runs moto's DynamoDB-compatible server for the test suite, one request at a time.

moto's own server handles requests on parallel threads, and its TransactWriteItems copies
a whole table while other threads change it: under concurrent writes it fails with
"dictionary changed size during iteration". DynamoDB applies each request atomically, so
this runner keeps moto's application and request handler but lets one request run inside
it at a time (connections are still accepted concurrently). Usage:

    python moto_server.py HOST PORT
"""

import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # The whole response is produced inside the lock.
            return list(app(environ, start_response))

    run_simple(
        host,
        port,
        one_at_a_time,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
