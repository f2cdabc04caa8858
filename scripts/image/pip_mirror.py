"""pip's index settings of this machine, made usable inside `docker build --network host`.

scripts/image-test runs this beside the builds. It reads the machine's own pip configuration (scripts/pip_config.py:
config files and PIP_* variables, the same values pip itself uses here), and
- serves every local index or find-links folder (file:// URLs, plain paths) over HTTP on 127.0.0.1 (a
  build container on the host network reaches the host's loopback; pip treats 127.0.0.1 as secure), each
  folder under its own prefix and nothing else;
- keeps remote index URLs as they are;
- writes the build args (`KEY=VALUE` lines: PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS,
  PIP_DEFAULT_TIMEOUT, and PIP_CERT naming the path the base image keeps the CA bundle at; the same for uv,
  UV_DEFAULT_INDEX, UV_INDEX, UV_FIND_LINKS, UV_HTTP_TIMEOUT, SSL_CERT_FILE) to --args-file,
  and the host CA bundle pip is configured with (if any) to --cert-file, for the base image to trust;
then serves until it is terminated. No index host name is written down anywhere: all come from pip.
"""
from __future__ import annotations

import argparse
import os
import posixpath
import sys
import urllib.parse
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/: pip_config
from pip_config import pip_settings, timeout

IMAGE_CERT_PATH = "/usr/local/share/platbench/pip-ca-bundle.pem"  # where docker/base keeps the bundle


def local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if "://" not in url:
        return Path(url)
    return None


class Mirror:
    def __init__(self) -> None:
        self.roots: dict[str, str] = {}

    def expose(self, folder: Path) -> str:
        for prefix, root in self.roots.items():
            if root == str(folder):
                return prefix
        prefix = f"m{len(self.roots)}"
        self.roots[prefix] = str(folder)
        return prefix

    def index_url(self, url: str, port: int) -> str:
        """An index root (…/simple): its parent is served, since PEP 503 pages link to ../../files/…."""
        path = local_path(url)
        if path is None:
            return url
        path = path.resolve()
        return f"http://127.0.0.1:{port}/{self.expose(path.parent)}/{path.name}/"

    def links_url(self, url: str, port: int) -> str:
        path = local_path(url)
        if path is None:
            return url
        return f"http://127.0.0.1:{port}/{self.expose(path.resolve())}/"


class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, roots: dict[str, str], **kwargs):
        self.roots = roots
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        prefix, _, rest = path.lstrip("/").partition("/")
        root = self.roots.get(prefix)
        rest = posixpath.normpath("/" + rest).lstrip("/")  # no way above the served folder
        if root is None:
            return "/nonexistent/platbench-mirror"
        full = os.path.join(root, rest)
        return full + "/" if path.endswith("/") and not full.endswith("/") else full

    def log_message(self, *args) -> None:  # quiet: pip's own log tells what it fetched
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--args-file", type=Path, required=True)
    ap.add_argument("--cert-file", type=Path, required=True, help="gets the host CA bundle pip uses (if any)")
    ap.add_argument("--python", default=sys.executable, help="whose pip configuration to read")
    ap.add_argument("--port", type=int, default=0,
                    help="serve on this port if it is free (else any): the URLs go into build args, and a build "
                         "arg that changes from one build to the next makes Docker rerun every RUN after it, "
                         "so a fixed port lets a kept build cache reuse the lock's install layers")
    ns = ap.parse_args()

    settings = pip_settings(ns.python)
    mirror = Mirror()
    handler = partial(Handler, roots=mirror.roots)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", ns.port), handler)
    except OSError as e:  # taken: any free port still works, only without cache reuse
        print(f"pip mirror: port {ns.port} not available ({e.strerror}); using any free port", file=sys.stderr)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    port = server.server_address[1]
    args: dict[str, str] = {}
    # each setting for pip and for uv (the Dockerfile installs with both; uv reads no PIP_* variable)
    if settings.get("index-url"):
        args["PIP_INDEX_URL"] = args["UV_DEFAULT_INDEX"] = mirror.index_url(settings["index-url"], port)
    if settings.get("extra-index-url"):
        urls = [mirror.index_url(u, port) for u in settings["extra-index-url"].split()]
        args["PIP_EXTRA_INDEX_URL"] = args["UV_INDEX"] = " ".join(urls)
    if settings.get("find-links"):
        urls = [mirror.links_url(u, port) for u in settings["find-links"].split()]
        args["PIP_FIND_LINKS"], args["UV_FIND_LINKS"] = " ".join(urls), ",".join(urls)
    if timeout(settings):
        args["PIP_DEFAULT_TIMEOUT"] = args["UV_HTTP_TIMEOUT"] = timeout(settings)
    cert = settings.get("cert")
    if cert and Path(cert).is_file():
        ns.cert_file.write_bytes(Path(cert).read_bytes())
        args["PIP_CERT"] = args["SSL_CERT_FILE"] = IMAGE_CERT_PATH
    tmp = ns.args_file.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in args.items()))
    tmp.replace(ns.args_file)  # the caller waits for this file: write it whole
    for prefix, root in mirror.roots.items():
        print(f"pip mirror: http://127.0.0.1:{port}/{prefix}/ -> {root}", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
