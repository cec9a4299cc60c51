"""Test-side stand-ins for the parts of a cluster that are not the API server: the ReplicaSet
controller and the kubelet, for workers that run as real processes on loopback.

`PodHarness` watches a Deployment's `spec.replicas` (as the operator scales it), keeps one
Pod object per running worker process with its real address, ports and readiness, and
writes the Deployment's status (replicas, ready, available) as the controllers would. Each
worker process is started by the caller (`start_worker`); scaling up starts more of them,
scaling down stops the newest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.apiserver.envtest import ControlPlane


@dataclass
class Worker:
    """What the harness needs of a running worker process."""

    name: str
    port: int
    admin_port: int
    stop: Callable[[], None]


@dataclass
class PodHarness:
    plane: ControlPlane
    namespace: str
    deployment: str
    labels: dict[str, str]
    start_worker: Callable[[str], Worker]
    max_workers: int = 4
    workers: list[Worker] = field(default_factory=list)
    replicas_seen: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def deployment_object(self) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.deployment, "namespace": self.namespace},
            "spec": {
                "selector": {"matchLabels": self.labels},
                "template": {
                    "metadata": {"labels": self.labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "worker",
                                "image": "latencyslo/worker:test",
                                "ports": [
                                    {"name": "http", "containerPort": 8080},
                                    {"name": "admin", "containerPort": 8081},
                                ],
                            }
                        ]
                    },
                },
            },
        }

    def _pod(self, worker: Worker) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": worker.name, "namespace": self.namespace, "labels": self.labels},
            "spec": {
                "containers": [
                    {
                        "name": "worker",
                        "image": "latencyslo/worker:test",
                        "ports": [
                            {"name": "http", "containerPort": worker.port},
                            {"name": "admin", "containerPort": worker.admin_port},
                        ],
                    }
                ]
            },
        }

    def _kubectl(self, *args: str, stdin: str | None = None) -> None:
        proc = self.plane.kubectl(*args, stdin=stdin)
        if proc.returncode != 0:
            self.errors.append(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()}")

    def _add(self) -> None:
        worker = self.start_worker(f"{self.deployment}-{len(self.workers)}")
        self.workers.append(worker)
        self._kubectl("create", "-f", "-", stdin=yaml.safe_dump(self._pod(worker)))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "status": {
                "phase": "Running",
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                ],
            }
        }
        self._kubectl(
            "patch", "pod", worker.name, "-n", self.namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps(status),
        )  # fmt: skip

    def _remove(self) -> None:
        worker = self.workers.pop()
        self._kubectl("delete", "pod", worker.name, "-n", self.namespace, "--wait=false")
        worker.stop()

    def sync(self) -> None:
        """One pass of the controllers: pods follow spec.replicas, status follows pods."""
        proc = self.plane.kubectl(
            "get", "deployment", self.deployment, "-n", self.namespace, "-o", "json"
        )
        if proc.returncode != 0:
            self.errors.append(proc.stderr.strip())
            return
        deployment = json.loads(proc.stdout)
        wanted = min(int(deployment["spec"].get("replicas", 1)), self.max_workers)
        if not self.replicas_seen or self.replicas_seen[-1] != wanted:
            self.replicas_seen.append(wanted)
        while len(self.workers) < wanted:
            self._add()
        while len(self.workers) > wanted:
            self._remove()
        n = len(self.workers)
        status = {
            "status": {
                "observedGeneration": deployment["metadata"].get("generation", 1),
                "replicas": n,
                "updatedReplicas": n,
                "readyReplicas": n,
                "availableReplicas": n,
            }
        }
        self._kubectl(
            "patch", "deployment", self.deployment, "-n", self.namespace,
            "--subresource=status", "--type=merge", "-p", json.dumps(status),
        )  # fmt: skip

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sync()

    def start(self) -> PodHarness:
        proc = self.plane.apply([self.deployment_object()])
        assert proc.returncode == 0, proc.stderr
        self.sync()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        while self.workers:
            self.workers.pop().stop()
