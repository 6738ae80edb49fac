"""Elastic Beanstalk for the local cloud: application versions, environments that really serve, CNAMEs.

moto 5.2.5 keeps little more than names for Beanstalk (no application versions, no UpdateEnvironment, no
SwapEnvironmentCNAMEs, a hard-coded Grey health, an empty CNAME). What Conveyor's Beanstalk target needs is
emulated here, and ``conveyor_local.moto_patches.elasticbeanstalk`` routes those actions to it:

- ``CreateApplicationVersion`` reads its ``SourceBundle`` from the local cloud's S3 (moto's backend, the
  object as stored) and extracts it; a missing object or a bundle that is not a zip is refused, as EB does.
- Each environment runs its version like EB's Python platform: one instance, a subprocess
  (``conveyor_local.beanstalk_host``) serving the bundle's WSGI callable (``WSGIPath``, default
  ``application:application``) on a loopback port. ``UpdateEnvironment(VersionLabel)`` replaces the
  instance (all at once: the old process stops, the new one starts); ``TerminateEnvironment`` stops it, and
  so does stopping the local cloud (``shutdown``).
- Every environment has a CNAME (``<CNAMEPrefix or name>.<region>.elasticbeanstalk.com``), unique in its
  region, and ``SwapEnvironmentCNAMEs`` exchanges two. The names do not resolve: the local cloud owns an HTTP
  front (``Front``) on ``127.0.0.1:<front port>`` that routes by ``Host`` header to the environment holding
  that CNAME. It also answers proxy requests (an absolute URL in the request line), so any HTTP client
  given ``http_proxy=http://127.0.0.1:<front port>`` (the local cloud gives it to its Lambda workers, with
  ``no_proxy`` for loopback) reaches ``http://<cname>/...`` as on AWS. From a shell:
  ``curl -H 'Host: <cname>' http://127.0.0.1:<front port>/`` or ``curl -x http://127.0.0.1:<front port> http://<cname>/``.
- Health (``Health``/``HealthStatus`` of ``DescribeEnvironments``, and ``DescribeEnvironmentHealth``) is
  measured when asked, the way EB's health agent does: Red/Severe when the instance is not running (the app
  failed to start: the cause quotes its last log line) or its health check URL (``aws:elasticbeanstalk:
  application`` ``Application Healthcheck URL``, default ``/``) does not answer 2xx/3xx; Green/Ok otherwise.

Environments change synchronously: an environment is ``Ready`` when the call that launched or updated it
returns (AWS answers ``Launching``/``Updating`` first; clients wait for ``Ready`` either way). The state lives
on moto's Beanstalk backends, so the local cloud's snapshots keep it; instances are started again after a
restore. What is not emulated: several instances, rolling policies, configuration templates.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import queue
import shutil
import subprocess
import sys
import threading
import urllib.parse
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

#: How long an instance may take to import the app and listen before the environment turns Red.
START_TIMEOUT_SECONDS = 30.0
#: How long the health check URL may take to answer.
HEALTH_TIMEOUT_SECONDS = 5.0
APPLICATION_NAMESPACE = "aws:elasticbeanstalk:application"
HEALTHCHECK_OPTION = "Application Healthcheck URL"
PYTHON_NAMESPACE = "aws:elasticbeanstalk:container:python"
WSGI_OPTION = "WSGIPath"
DEFAULT_WSGI_PATH = "application:application"
SOLUTION_STACK = "64bit Amazon Linux 2023 v4.6.0 running Python 3.11"
PROXY_ENV_KEYS = ("http_proxy", "HTTP_PROXY")
#: Where a region's emulation lives on moto's own Beanstalk backend (so snapshots and resets carry it).
STATE_ATTRIBUTE = "conveyor_beanstalk"


class BeanstalkRequestError(Exception):
    """A request EB refuses: ``code`` is the AWS error code, the message says which parameter and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> BeanstalkRequestError:
    return BeanstalkRequestError("InvalidParameterValue", message)


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------- instances


class Instance:
    """The one instance of an environment: a ``beanstalk_host`` process serving a version's extracted bundle."""

    def __init__(self, root: Path, wsgi_path: str, log_path: Path) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.port: int | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conveyor_local.beanstalk_host", str(root), wsgi_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=root,
        )
        self.port = self._await_port()

    def _await_port(self) -> int | None:
        """The port the app listens on, or None when it exited (or never listened) first."""
        lines: queue.Queue[bytes] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=START_TIMEOUT_SECONDS)
        except queue.Empty:
            self.stop()
            return None
        if not first.startswith(b"PORT "):
            self.process.wait()
            return None
        threading.Thread(target=self._drain, args=(stdout,), daemon=True).start()
        return int(first.split()[1])

    def _drain(self, stdout: io.BufferedReader | Any) -> None:
        for line in iter(stdout.readline, b""):
            self._log.write(line)
            self._log.flush()

    @property
    def running(self) -> bool:
        return self.port is not None and self.process.poll() is None

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
            if lines:
                return lines[-1].strip()[:300]
        return "(no output)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# ------------------------------------------------------------------------- the model


@dataclass
class ApplicationVersion:
    application_name: str
    version_label: str
    bucket: str
    key: str
    root: Path
    description: str = ""
    created: datetime = field(default_factory=_now)

    def describe(self) -> dict[str, Any]:
        return {
            "ApplicationName": self.application_name,
            "VersionLabel": self.version_label,
            "Description": self.description,
            "SourceBundle": {"S3Bucket": self.bucket, "S3Key": self.key},
            "DateCreated": self.created,
            "DateUpdated": self.created,
            "Status": "PROCESSED",
        }


@dataclass
class Application:
    name: str
    arn: str
    created: datetime = field(default_factory=_now)
    versions: dict[str, ApplicationVersion] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "ApplicationName": self.name,
            "ApplicationArn": self.arn,
            "DateCreated": self.created,
            "DateUpdated": self.created,
            "Versions": list(self.versions),
        }


@dataclass
class Health:
    color: str
    status: str
    causes: list[str]


@dataclass
class Environment:
    name: str
    environment_id: str
    arn: str
    application_name: str
    cname: str
    version_label: str | None
    health_path: str
    wsgi_path: str
    tags: dict[str, str]
    status: str = "Ready"
    instance: Instance | None = None
    created: datetime = field(default_factory=_now)
    updated: datetime = field(default_factory=_now)

    def __getstate__(self) -> dict[str, Any]:
        """Its instance is a process, not state: a restored environment is relaunched (``relaunch``)."""
        return {**self.__dict__, "instance": None}

    def health(self) -> Health:
        if self.status == "Terminated":
            return Health("Grey", "Suspended", ["The environment is terminated."])
        if self.instance is None:
            return Health("Grey", "No Data", ["No application version is deployed."])
        if not self.instance.running:
            return Health(
                "Red",
                "Severe",
                [f"The application failed to start (WSGIPath {self.wsgi_path}): {self.instance.last_log_line()}"],
            )
        failure = _probe(self.instance.port, self.health_path)
        if failure:
            return Health("Red", "Severe", [f"Health check URL {self.health_path} failed: {failure}"])
        return Health("Green", "Ok", [])

    def describe(self, health: Health | None = None) -> dict[str, Any]:
        health = health or self.health()
        return {
            "EnvironmentName": self.name,
            "EnvironmentId": self.environment_id,
            "EnvironmentArn": self.arn,
            "ApplicationName": self.application_name,
            **({"VersionLabel": self.version_label} if self.version_label else {}),
            "SolutionStackName": SOLUTION_STACK,
            "CNAME": self.cname,
            "EndpointURL": self.cname,
            "DateCreated": self.created,
            "DateUpdated": self.updated,
            "Status": self.status,
            "AbortableOperationInProgress": False,
            "Health": health.color,
            "HealthStatus": health.status,
            "Tier": {"Name": "WebServer", "Type": "Standard", "Version": "1.0"},
        }


def _probe(port: int | None, path: str) -> str | None:
    """None when ``path`` answers 2xx/3xx on the instance, else what went wrong."""
    connection = http.client.HTTPConnection("127.0.0.1", port or 0, timeout=HEALTH_TIMEOUT_SECONDS)
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return None if 200 <= status < 400 else f"HTTP {status}"


def _option(settings: list[Mapping[str, Any]] | None, namespace: str, name: str) -> str | None:
    for setting in settings or []:
        if setting.get("Namespace") == namespace and setting.get("OptionName") == name:
            return str(setting.get("Value", ""))
    return None


def _wsgi_path(value: str) -> str:
    """``application.py`` (the Amazon Linux 1 spelling) or ``module:callable``, as ``module:callable``."""
    if ":" in value:
        return value
    return value.removesuffix(".py").replace("/", ".") + ":application"


# ------------------------------------------------------------------------- one account and region


class RegionBeanstalk:
    """Applications, versions and environments of one account in one region."""

    def __init__(self, account_id: str, region: str, cache_dir: Path) -> None:
        self.account_id = account_id
        self.region = region
        self.cache_dir = cache_dir
        self.applications: dict[str, Application] = {}
        self.environments: dict[str, Environment] = {}
        self.lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    def relaunch(self) -> None:
        for env in list(self.live()):
            version = self.applications.get(env.application_name)
            running = env.instance is not None and env.instance.running
            if not running and version is not None and env.version_label in version.versions:
                self._launch(env, version.versions[env.version_label])

    def _arn(self, kind: str, path: str) -> str:
        return f"arn:aws:elasticbeanstalk:{self.region}:{self.account_id}:{kind}/{path}"

    def application(self, name: str) -> Application:
        try:
            return self.applications[name]
        except KeyError:
            raise _invalid(f"No Application named '{name}' found.") from None

    def create_application(self, name: str) -> Application:
        with self.lock:
            if name in self.applications:
                raise _invalid(f"Application {name} already exists.")
            app = Application(name, self._arn("application", name))
            self.applications[name] = app
            return app

    def create_application_version(
        self,
        application_name: str,
        label: str,
        bucket: str,
        key: str,
        bundle: bytes | None,
        *,
        description: str = "",
        auto_create: bool = False,
    ) -> ApplicationVersion:
        with self.lock:
            if application_name not in self.applications and auto_create:
                self.create_application(application_name)
            app = self.application(application_name)
            if label in app.versions:
                raise _invalid(f"Application Version {label} already exists.")
            if bundle is None:
                raise BeanstalkRequestError(
                    "InvalidParameterCombination",
                    f"Unable to download from S3 location (Bucket: {bucket} Key: {key}). Reason: Not Found",
                )
            root = self.cache_dir / "versions" / application_name / uuid.uuid4().hex
            try:
                with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
                    _extract(archive, root)
            except zipfile.BadZipFile as exc:
                shutil.rmtree(root, ignore_errors=True)
                raise _invalid(f"The source bundle s3://{bucket}/{key} is not a valid zip file: {exc}") from None
            version = ApplicationVersion(application_name, label, bucket, key, root, description)
            app.versions[label] = version
            return version

    def versions(self, application_name: str | None, labels: list[str] | None) -> list[ApplicationVersion]:
        apps = [self.application(application_name)] if application_name else list(self.applications.values())
        found = [v for app in apps for v in app.versions.values()]
        return [v for v in found if not labels or v.version_label in labels]

    def live(self) -> Iterator[Environment]:
        return (env for env in self.environments.values() if env.status != "Terminated")

    def environment(self, name: str | None, environment_id: str | None = None) -> Environment:
        for env in self.live():
            if (name and env.name == name) or (environment_id and env.environment_id == environment_id):
                return env
        raise _invalid(f"No Environment found for EnvironmentName = '{name or environment_id}'.")

    def create_environment(
        self,
        application_name: str,
        name: str,
        *,
        version_label: str | None,
        cname_prefix: str | None,
        options: list[Mapping[str, Any]] | None,
        tags: dict[str, str],
    ) -> Environment:
        with self.lock:
            app = self.application(application_name)
            if any(env.name == name for env in self.live()):
                raise _invalid(f"Environment {name} already exists.")
            cname = f"{cname_prefix or name}.{self.region}.elasticbeanstalk.com".lower()
            if any(env.cname == cname for env in self.live()):
                raise _invalid(f"DNS name ({cname}) is not available.")
            version = app.versions.get(version_label) if version_label else None
            if version_label and version is None:
                raise _invalid(f"No Application Version named '{version_label}' found.")
            env = Environment(
                name=name,
                environment_id="e-" + uuid.uuid4().hex[:10],
                arn=self._arn("environment", f"{application_name}/{name}"),
                application_name=application_name,
                cname=cname,
                version_label=version_label,
                health_path=_option(options, APPLICATION_NAMESPACE, HEALTHCHECK_OPTION) or "/",
                wsgi_path=_wsgi_path(_option(options, PYTHON_NAMESPACE, WSGI_OPTION) or DEFAULT_WSGI_PATH),
                tags=tags,
            )
            self.environments[env.environment_id] = env
        if version is not None:
            self._launch(env, version)
        return env

    def update_environment(
        self, env: Environment, *, version_label: str | None, options: list[Mapping[str, Any]] | None
    ) -> Environment:
        with self.lock:
            version = None
            if version_label:
                version = self.application(env.application_name).versions.get(version_label)
                if version is None:
                    raise _invalid(f"No Application Version named '{version_label}' found.")
            health_path = _option(options, APPLICATION_NAMESPACE, HEALTHCHECK_OPTION)
            wsgi_path = _option(options, PYTHON_NAMESPACE, WSGI_OPTION)
            env.health_path = health_path or env.health_path
            env.wsgi_path = _wsgi_path(wsgi_path) if wsgi_path else env.wsgi_path
            env.updated = _now()
        if version is not None:
            env.version_label = version.version_label
            self._launch(env, version)
        elif wsgi_path and env.version_label:
            self._launch(env, self.application(env.application_name).versions[env.version_label])
        return env

    def _launch(self, env: Environment, version: ApplicationVersion) -> None:
        """Replace the environment's instance by one running ``version`` (all at once, as a one-instance EB does)."""
        env.status = "Updating"
        if env.instance is not None:
            env.instance.stop()
        env.instance = Instance(version.root, env.wsgi_path, self.cache_dir / "logs" / f"{env.name}.log")
        env.status = "Ready"
        env.updated = _now()
        LOG.info("beanstalk %s serves %s on port %s", env.name, version.version_label, env.instance.port)

    def terminate_environment(self, env: Environment) -> Environment:
        with self.lock:
            if env.instance is not None:
                env.instance.stop()
            env.status = "Terminated"
            env.updated = _now()
            return env

    def swap_cnames(self, source: Environment, destination: Environment) -> None:
        with self.lock:
            if source is destination:
                raise _invalid("SwapEnvironmentCNAMEs needs two different environments.")
            for env in (source, destination):
                if env.status != "Ready":
                    raise _invalid(f"Environment named {env.name} is in an invalid state for this operation.")
            source.cname, destination.cname = destination.cname, source.cname
            source.updated = destination.updated = _now()

    def port_for_cname(self, cname: str) -> int | None:
        for env in self.live():
            if env.cname == cname and env.instance is not None and env.instance.running:
                return env.instance.port
        return None

    def shutdown(self) -> None:
        with self.lock:
            for env in self.environments.values():
                if env.instance is not None:
                    env.instance.stop()
                    env.instance = None


def _extract(archive: zipfile.ZipFile, root: Path) -> None:
    """Extract a bundle, refusing a member that would land outside ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    resolved = root.resolve()
    for member in archive.infolist():
        target = (root / member.filename).resolve()
        if not target.is_relative_to(resolved):
            raise zipfile.BadZipFile(f"member {member.filename!r} escapes the bundle")
    archive.extractall(root)


# ------------------------------------------------------------------------- the HTTP front


class Front:
    """The local cloud's stand-in for DNS: ``127.0.0.1:<port>`` routes a request to the environment whose CNAME
    is its ``Host`` (or, as a proxy, its absolute URL's host)."""

    def __init__(self, resolve: Any, port: int = 0) -> None:
        self._resolve = resolve
        handler = type("FrontHandler", (_FrontHandler,), {"resolve": staticmethod(resolve)})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="beanstalk-front", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


class _FrontHandler(BaseHTTPRequestHandler):
    resolve: Any
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        LOG.debug("front: " + format, *args)

    def _forward(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        host = (url.hostname or self.headers.get("Host", "").rsplit(":", 1)[0]).lower()
        path = (url.path or "/") + (f"?{url.query}" if url.query else "") if url.scheme else self.path
        port = self.resolve(host)
        if port is None:
            self._answer(502, f"no running Elastic Beanstalk environment has the CNAME {host!r}\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
            connection.request(self.command, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError as exc:
            self._answer(502, f"the environment behind {host} did not answer: {exc}\n")
            return
        finally:
            connection.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward


# ------------------------------------------------------------------------- every account and region


class BeanstalkCloud:
    """All of the local cloud's Beanstalk: one ``RegionBeanstalk`` per account and region, and the front.

    Each ``RegionBeanstalk`` lives on moto's own Beanstalk backend of its account and region (attribute
    ``conveyor_beanstalk``), so what moto's state goes through goes through it too: a reset empties it, and the
    local cloud's snapshots keep it (``conveyor_local.persistence``; its instances are processes, not state:
    ``relaunch`` starts them again after a restore).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cache_dir: Path | None = None
        self.front: Front | None = None

    def configure(self, cache_dir: Path, front_port: int = 0) -> Front:
        """Where bundles are extracted, and the front (started once; a new configuration keeps its port); then
        every environment a restored snapshot holds serves again."""
        with self._lock:
            self.cache_dir = cache_dir / "beanstalk"
            if self.front is None:
                self.front = Front(self.port_for_cname, front_port)
            front = self.front
        self.relaunch()
        return front

    def region(self, account_id: str, region: str) -> RegionBeanstalk:
        backend = _eb_backends()[account_id][region]
        with self._lock:
            state: RegionBeanstalk | None = getattr(backend, STATE_ATTRIBUTE, None)
            if state is None:
                if self.cache_dir is None:
                    raise RuntimeError("conveyor_local.beanstalk is not configured (moto_patches.apply)")
                state = RegionBeanstalk(account_id, region, self.cache_dir / account_id / region)
                setattr(backend, STATE_ATTRIBUTE, state)
            return state

    def regions(self) -> list[RegionBeanstalk]:
        found = (getattr(backend, STATE_ATTRIBUTE, None) for _, _, backend in _eb_backends().iter_backends())
        return [state for state in found if isinstance(state, RegionBeanstalk)]

    def port_for_cname(self, cname: str) -> int | None:
        for region in self.regions():
            port = region.port_for_cname(cname)
            if port is not None:
                return port
        return None

    def relaunch(self) -> None:
        """Start the instance of every live environment that has a version and none running (after a restore)."""
        for region in self.regions():
            region.relaunch()

    def proxy_environment(self) -> dict[str, str]:
        """What makes an HTTP client reach ``http://<cname>/`` through the front (loopback stays direct)."""
        if self.front is None:
            return {}
        direct = "127.0.0.1,localhost"
        return {**dict.fromkeys(PROXY_ENV_KEYS, self.front.url), "no_proxy": direct, "NO_PROXY": direct}

    def shutdown(self) -> None:
        """Stop every environment's instance and the front (``local down``, ``moto_patches.restore``); the
        environments themselves stay in moto's backends (and in the last snapshot)."""
        with self._lock:
            front, self.front = self.front, None
        for region in self.regions():
            region.shutdown()
        if front is not None:
            front.stop()


def _eb_backends() -> Any:
    """moto's Beanstalk backends (imported when first needed: the CLI imports this module without moto)."""
    from moto.elasticbeanstalk.models import eb_backends

    return eb_backends


CLOUD = BeanstalkCloud()
