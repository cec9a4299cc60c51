"""A real kube-apiserver and etcd on loopback for tests, the way controller-runtime's envtest
runs them: no kubelet, no controller manager, no scheduler, just the API server.

The binaries come from `KUBEBUILDER_ASSETS` (a folder holding `kube-apiserver` and `etcd`, as
`setup-envtest use -p path` prints) or from `LATENCYSLO_KUBE_APISERVER` and
`LATENCYSLO_ETCD` (paths to the two binaries). `kubectl` comes from that folder, else PATH.

Clients authenticate with static bearer tokens (`--token-auth-file`): `admin` is in
`system:masters`; each further user (e.g. the operator's ServiceAccount name,
`system:serviceaccount:NS:NAME`, which RBAC ServiceAccount subjects match) gets its own
token and kubeconfig. Authorization is RBAC only, as on a real cluster. An audit log records
the requests of the users listed in `audited` (level Metadata) for RBAC checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from slo_local.promserver import free_port

ADMIN = "admin"


@dataclass(frozen=True)
class Binaries:
    apiserver: Path
    etcd: Path
    kubectl: Path


def find_binaries(env: dict[str, str] | None = None) -> Binaries | str:
    """The binaries, or the reason they are not there (a skip reason)."""
    env = dict(os.environ if env is None else env)
    assets = env.get("KUBEBUILDER_ASSETS")
    apiserver = env.get("LATENCYSLO_KUBE_APISERVER")
    etcd = env.get("LATENCYSLO_ETCD")
    if assets:
        apiserver = apiserver or str(Path(assets) / "kube-apiserver")
        etcd = etcd or str(Path(assets) / "etcd")
    if not apiserver or not etcd:
        return (
            "needs a kube-apiserver and etcd: set KUBEBUILDER_ASSETS (setup-envtest use -p path) "
            "or LATENCYSLO_KUBE_APISERVER and LATENCYSLO_ETCD"
        )
    for path in (apiserver, etcd):
        if not os.access(path, os.X_OK):
            return f"not an executable: {path}"
    kubectl = Path(assets or "/nonexistent") / "kubectl"
    found = (
        str(kubectl)
        if os.access(kubectl, os.X_OK)
        else shutil.which("kubectl", path=env.get("PATH"))
    )
    if not found:
        return "needs kubectl (in KUBEBUILDER_ASSETS or on PATH)"
    return Binaries(Path(apiserver), Path(etcd), Path(found))


@dataclass
class AuditEvent:
    user: str
    verb: str
    resource: str
    """`configmaps`, `deployments/scale`, `latencyslos/status` (subresource joined)."""
    api_group: str
    namespace: str
    name: str
    code: int
    message: str = ""
    """The answer's status message on a failure (an admission denial names its policy)."""

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> AuditEvent:
        ref = raw.get("objectRef") or {}
        resource = str(ref.get("resource") or "")
        if ref.get("subresource"):
            resource = f"{resource}/{ref['subresource']}"
        return cls(
            user=str((raw.get("user") or {}).get("username") or ""),
            verb=str(raw.get("verb") or ""),
            resource=resource,
            api_group=str(ref.get("apiGroup") or ""),
            namespace=str(ref.get("namespace") or ""),
            name=str(ref.get("name") or ""),
            code=int((raw.get("responseStatus") or {}).get("code") or 0),
            message=str((raw.get("responseStatus") or {}).get("message") or ""),
        )


def is_answered(raw: dict[str, Any]) -> bool:
    """A request the server has answered: ResponseComplete, or ResponseStarted for a watch
    (a watch completes only when it ends)."""
    stage = raw.get("stage")
    return stage == "ResponseComplete" or (
        stage == "ResponseStarted" and raw.get("verb") == "watch"
    )


@dataclass
class ControlPlane:
    """etcd + kube-apiserver in a temporary folder; `start()` waits until /readyz answers."""

    binaries: Binaries
    users: Sequence[str] = ()
    audited: Sequence[str] = ()
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="envtest-")))
    port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    tokens: dict[str, str] = field(default_factory=dict)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, process_group=0
        )
        log.close()
        self._procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout_s: float = 90.0) -> ControlPlane:
        self._start_etcd(timeout_s)
        self._start_apiserver(timeout_s)
        return self

    def _start_etcd(self, timeout_s: float) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        proc = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true",
            ],
        )
        self._wait(lambda: httpx.get(f"{client}/health", timeout=1.0), proc, "etcd", timeout_s)

    def _start_apiserver(self, timeout_s: float) -> None:
        key = self.workdir / "sa.key"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        self.tokens = {user: os.urandom(16).hex() for user in (ADMIN, *self.users)}
        lines = [f'{self.tokens[ADMIN]},{ADMIN},uid-admin,"system:masters"']
        for user in self.users:
            groups = ["system:authenticated"]
            if user.startswith("system:serviceaccount:"):
                namespace = user.split(":")[2]
                groups += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
            lines.append(f'{self.tokens[user]},{user},uid-{len(lines)},"{",".join(groups)}"')
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                *([{"level": "Metadata", "users": list(self.audited)}] if self.audited else []),
                {"level": "None"},
            ],
        }
        (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump(policy))
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.apiserver),
                "--advertise-address=127.0.0.1",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                f"--service-account-issuer={self.url}/",
                f"--service-account-key-file={key}",
                f"--service-account-signing-key-file={key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                # no controller manager issues ServiceAccount tokens: the plugin would refuse pods
                "--disable-admission-plugins=ServiceAccount",
                # what refuses blockOwnerDeletion without latencyslos/finalizers (on in most
                # production clusters, off by default in kube-apiserver)
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
            ],
        )
        headers = {"Authorization": f"Bearer {self.tokens[ADMIN]}"}
        self._wait(
            lambda: httpx.get(f"{self.url}/readyz", headers=headers, verify=False, timeout=2.0),
            proc,
            "kube-apiserver",
            timeout_s,
        )
        for user in (ADMIN, *self.users):
            self.kubeconfig(user).write_text(yaml.safe_dump(self._kubeconfig(user)))

    def _wait(self, probe: Any, proc: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if probe().status_code == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"{name} not ready after {timeout_s}s:\n{self.log_tail(name)}")

    def _kubeconfig(self, user: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.url, "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": "user", "user": {"token": self.tokens[user]}}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "user"}}],
            "current-context": "envtest",
        }

    def kubeconfig(self, user: str = ADMIN) -> Path:
        safe = user.replace(":", "_")
        return self.workdir / f"kubeconfig-{safe}.yaml"

    def kubectl(
        self, *args: str, stdin: str | None = None, user: str = ADMIN, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as `user` against this API server (never raises on a non-zero exit)."""
        return subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig(user)}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig(user))},
        )

    def apply(
        self, objects: Iterable[dict[str, Any]], *args: str
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl apply --server-side -f -` of several objects (admin)."""
        text = yaml.safe_dump_all(list(objects), sort_keys=False)
        return self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", *args, stdin=text
        )

    def audit_events(self, user: str) -> list[AuditEvent]:
        """The answered resource requests of `user` so far (the log is written synchronously)."""
        events = []
        if not self.audit_log.exists():
            return events
        for line in self.audit_log.read_text().splitlines():
            raw = json.loads(line)
            if (raw.get("user") or {}).get("username") != user or not is_answered(raw):
                continue
            if raw.get("objectRef"):  # not discovery (/api, /apis, /version): no RBAC rule
                events.append(AuditEvent.parse(raw))
        return events

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._procs.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def control_plane(
    binaries: Binaries, *, users: Sequence[str] = (), audited: Sequence[str] = ()
) -> Iterator[ControlPlane]:
    plane = ControlPlane(binaries, users=users, audited=audited)
    try:
        yield plane.start()
    finally:
        plane.stop()
