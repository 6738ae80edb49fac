"""One Elastic Beanstalk instance of the local cloud: the bundle's WSGI app served on a loopback port.

Run as ``python -m conveyor_local.beanstalk_host DIR MODULE:CALLABLE``, in the directory an application
version was extracted to. Like EB's Python platform (``aws:elasticbeanstalk:container:python`` ``WSGIPath``,
``application:application`` by default) it imports the module from the bundle's root and serves its callable.
It binds port 0 and prints ``PORT <n>`` on its first line once it listens, so the emulator knows where the
environment serves without racing for a port; an app that fails to import exits with its traceback on
stderr before that line, and the environment turns Red. It exits when the local cloud that started it is
gone, even one killed without a chance to stop it (``kill -9``): an instance never outlives its cloud.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


#: How often an instance checks that the local cloud that started it still runs.
PARENT_CHECK_SECONDS = 1.0


def _exit_with_parent(parent: int) -> None:
    """Exit once the parent (the local cloud's server) is gone: this process is then re-parented."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def main(argv: list[str]) -> int:
    root, wsgi_path = argv
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    module_name, _, attribute = wsgi_path.partition(":")
    sys.path.insert(0, root)
    app = getattr(importlib.import_module(module_name), attribute or "application")
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
