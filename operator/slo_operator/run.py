"""`latencyslo operator`: read the settings, then run kopf with the operator's handlers.

Settings come from flags, then `LATENCYSLO_*` environment variables, then defaults
(`slo_operator.settings`), read when the command starts. The Kubernetes credentials are the
in-cluster service account when running in a pod, else the kubeconfig (`$KUBECONFIG` or
`~/.kube/config`); kopf and the operator's own client use the same ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.resources
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import httpx
import kopf
from kubernetes.aio import client as k8s
from kubernetes.aio import config as k8s_config

from slo_operator.handlers import Runtime, build_registry
from slo_operator.opmetrics import OperatorMetrics
from slo_operator.settings import OperatorSettings, SettingsError, describe, load_settings
from slo_operator.shards import ShardClaims, ShardError
from slo_operator.types import ProfileSet

log = logging.getLogger("slo_operator")

DEFAULT_PROFILE = "demo-cpu.json"


def load_profiles(path: str | None) -> ProfileSet:
    """The calibrated profiles: `--profiles`, else the package's default profile."""
    if path:
        try:
            return ProfileSet.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SettingsError(
                f"--profiles / $LATENCYSLO_PROFILES: cannot read {path}: {exc}"
            ) from exc
    resource = importlib.resources.files("slo_operator").joinpath("profiles", DEFAULT_PROFILE)
    try:
        import json

        return ProfileSet.from_json(json.loads(resource.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            f"no performance profile: the package's profiles/{DEFAULT_PROFILE} is unreadable "
            f"({exc}); pass --profiles FILE (written by `latencyslo calibrate`)"
        ) from exc


async def load_api_configuration() -> k8s.Configuration:
    """In-cluster credentials inside a pod, else the kubeconfig."""
    configuration = k8s.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        await k8s_config.load_kube_config(client_configuration=configuration)
    return configuration


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "all_proxy", "netrc")


def environment_is_trusted() -> bool:
    """Whether the API client should read proxies and credentials from the environment.

    aiohttp does that on every request when `trust_env` is on (the proxy variables and
    ~/.netrc, in a thread): about a fifth of the operator's busy time at 1,000 LatencySLOs. It
    is on only when there is something to read: a proxy variable, `NETRC`, or a ~/.netrc."""
    names = {name.lower() for name, value in os.environ.items() if value}
    return bool(names & set(_PROXY_VARIABLES)) or Path("~/.netrc").expanduser().is_file()


async def run_operator(
    settings: OperatorSettings,
    *,
    api_configuration: k8s.Configuration | None = None,
    connection: kopf.ConnectionInfo | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    runtime_options: dict[str, Any] | None = None,
) -> None:
    """Run the operator until `stop_flag` is set (or a signal): also what tests call.

    With `settings.shard_id`, the watched namespaces are claimed first
    (`slo_operator.shards`): another operator's claim on one of them raises `ShardConflict`
    before anything is watched; a claim lost while running stops the operator and raises it.
    """
    baseline = load_profiles(settings.profiles)
    configuration = api_configuration or await load_api_configuration()
    if configuration.client_session_kwargs is None and not environment_is_trusted():
        configuration.client_session_kwargs = {"trust_env": False}
    metrics = OperatorMetrics()
    metrics.serve(settings.metrics_port)
    try:
        async with contextlib.AsyncExitStack() as stack:
            claims: ShardClaims | None = None
            keeper: asyncio.Task[None] | None = None
            stop = stop_flag
            if settings.shard_id:
                # its own client: kopf's cleanup closes the runtime's before the release
                claim_api = await stack.enter_async_context(k8s.ApiClient(configuration))
                claims = ShardClaims(claim_api, settings.shard_id, settings.namespaces)
                await claims.acquire()  # raises ShardConflict: nothing watched yet
                stop = stop_flag if stop_flag is not None else asyncio.Event()
                keeper = asyncio.create_task(claims.keep(stop))  # a lost claim sets stop
            try:
                await _run_kopf(
                    settings, configuration, baseline, metrics, connection, stop, ready_flag,
                    runtime_options,
                )  # fmt: skip
            finally:
                if keeper is not None:
                    keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
                if claims is not None and claims.lost is None:
                    await claims.release()
            if claims is not None and claims.lost is not None:
                raise claims.lost
    finally:
        metrics.close()


async def _run_kopf(
    settings: OperatorSettings,
    configuration: k8s.Configuration,
    baseline: ProfileSet,
    metrics: OperatorMetrics,
    connection: kopf.ConnectionInfo | None,
    stop_flag: asyncio.Event | None,
    ready_flag: asyncio.Event | None,
    runtime_options: dict[str, Any] | None,
) -> None:
    async with (
        k8s.ApiClient(configuration) as api,
        httpx.AsyncClient(timeout=httpx.Timeout(settings.push_timeout_s)) as http,
    ):
        runtime = Runtime(
            settings=settings,
            api=api,
            baseline=baseline,
            metrics=metrics,
            connection=connection,
            http=http,
            **(runtime_options or {}),
        )
        await kopf.operator(
            registry=build_registry(runtime),
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            standalone=True if settings.standalone else None,
            peering_name=settings.peering if settings.peering_mandatory else None,
            liveness_endpoint=settings.liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )


GC_THRESHOLD = (10_000, 10, 10)
"""The cyclic garbage collector's thresholds in the operator process. With Python's default
first threshold (700 allocations), a step's transient objects that are alive at a young
collection (hundreds of other steps are suspended mid-flight at any moment) get promoted, and
full collections of the whole heap follow often: at 1,000 LatencySLOs 3 to 4 a minute, a
fifth of the operator's CPU (docs/operator.md, Sizing). Collecting the youngest generation
every 10,000 allocations promotes far fewer of them; every cycle is still collected."""


@click.command("operator")
@click.option(
    "--prometheus-url",
    default=None,
    help="Prometheus base URL. [$LATENCYSLO_PROMETHEUS_URL; "
    "default http://prometheus-operated.monitoring.svc:9090]",
)
@click.option(
    "--max-replicas", default=None, help="Hard replica cap. [$LATENCYSLO_MAX_REPLICAS; 32]"
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespace to watch, repeatable. [$LATENCYSLO_NAMESPACES, comma list; default all]",
)
@click.option(
    "--push-timeout",
    "push_timeout_s",
    default=None,
    help="Timeout of one push to a pod, s. [$LATENCYSLO_PUSH_TIMEOUT_S; 2]",
)
@click.option(
    "--query-timeout",
    "query_timeout_s",
    default=None,
    help="Timeout of one Prometheus query, s. [$LATENCYSLO_QUERY_TIMEOUT_S; 5]",
)
@click.option(
    "--admin-token-secret",
    default=None,
    help="Secret with the workers' admin token, key token. "
    "[$LATENCYSLO_ADMIN_TOKEN_SECRET; latencyslo-admin-token]",
)
@click.option(
    "--metrics-port",
    default=None,
    help="Port of the operator's /metrics, 0 = off. [$LATENCYSLO_METRICS_PORT; 9102]",
)
@click.option(
    "--liveness",
    default=None,
    help="kopf liveness endpoint, '' = off. [default http://0.0.0.0:8080/healthz]",
)
@click.option(
    "--max-data-age",
    "max_data_age_s",
    default=None,
    help="Newest sample older than this is stale, s. [$LATENCYSLO_MAX_DATA_AGE_S; 60]",
)
@click.option(
    "--profiles",
    default=None,
    help="Calibrated ProfileSet JSON. [$LATENCYSLO_PROFILES; the packaged demo-cpu.json]",
)
@click.option(
    "--peering",
    default=None,
    help="kopf peering name; makes peering mandatory. [$LATENCYSLO_PEERING; latencyslo, "
    "auto-detected]",
)
@click.option(
    "--standalone",
    is_flag=True,
    default=None,
    help="No peering (a single operator replica). [$LATENCYSLO_STANDALONE]",
)
@click.option(
    "--target-label",
    default=None,
    help="Label naming a series' Deployment; queries select <label>=<targetRef.name>, "
    "'' = the whole namespace. [$LATENCYSLO_TARGET_LABEL; deployment]",
)
@click.option(
    "--query-share",
    "query_share_s",
    default=None,
    help="Steps of one query group within this many seconds share one evaluation, 0 = none. "
    "[$LATENCYSLO_QUERY_SHARE_S; 7.5]",
)
@click.option(
    "--scrape-interval",
    "scrape_interval_s",
    default=None,
    help="How often Prometheus scrapes the workers, s (sets the shortest rate ranges). "
    "[$LATENCYSLO_SCRAPE_INTERVAL_S; 15]",
)
@click.option(
    "--look-interval",
    "look_interval_s",
    default=None,
    help="Look at the metrics this often between steps and step at once on a clear breach, "
    "s; never more often than the scrape interval; 0 = no looks. "
    "[$LATENCYSLO_LOOK_INTERVAL_S; 5]",
)
@click.option(
    "--prometheus-concurrency",
    default=None,
    help="Prometheus queries in flight at most. [$LATENCYSLO_PROMETHEUS_CONCURRENCY; 4]",
)
@click.option(
    "--prometheus-max-mib",
    default=None,
    help="Largest Prometheus answer read, MiB. [$LATENCYSLO_PROMETHEUS_MAX_MIB; 16]",
)
@click.option(
    "--max-concurrent-steps",
    default=None,
    help="Control steps running at once, shared by namespace. "
    "[$LATENCYSLO_MAX_CONCURRENT_STEPS; 16]",
)
@click.option(
    "--shard-id",
    default=None,
    help="Claim the watched namespaces under this identity; refuse to start when another "
    "operator claims one of them. Needs --namespace. [$LATENCYSLO_SHARD_ID; no claims]",
)
@click.option("--verbose", is_flag=True, default=False, help="Debug logging.")
def operator_command(verbose: bool, **flags: Any) -> None:
    """Run the LatencySLO operator (kopf) against the current cluster."""
    gc.set_threshold(*GC_THRESHOLD)
    try:
        settings = load_settings(flags)
        load_profiles(settings.profiles)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    kopf.configure(verbose=verbose)
    if not verbose:  # one line per Prometheus query or pod push is noise at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)
    for flag, value in describe(settings):
        log.info("setting %s = %s", flag, value)
    try:
        asyncio.run(run_operator(settings))
    except ShardError as exc:
        raise click.ClickException(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> None:
    operator_command.main(args=list(argv) if argv is not None else None)


if __name__ == "__main__":
    main()
