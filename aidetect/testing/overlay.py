"""Run the processes a rendered kustomize overlay describes, on loopback, with nothing invented.

    objs = render(REPO / "gitops/apps/detector/overlays/production", kubectl)
    secrets = external_secrets(objs, {"pg_user": "postgres", ...})       # ExternalSecret templates filled
    spec = workload(objs, "Deployment", "detector-cpu", secrets)         # env (envFrom, *KeyRef, $(VAR)), argv
    spec = spec.relocated(ADDRESSES, {"postgres": 5432, ...}, listen="127.0.0.1:8000", mounts=tmpdir)

What a container would get is read from the objects: `envFrom` ConfigMaps and Secrets, `env` values and
`configMapKeyRef`/`secretKeyRef`, `$(VAR)` references in env and args, the command and args. Secrets come
from the ExternalSecrets' templates, filled with test values for each `secretKey`. Then only addresses
move: every in-cluster `host:port` named in the caller's one table becomes its loopback address, the
container's `--host`/`--port` become where the process listens, and each mounted volume (an emptyDir,
per pod) becomes a folder of its own. Anything the overlay does not say stays unsaid, so a setting the
code needs and the overlay lacks shows up as a failure, not as a default the test filled in.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import yaml

_TEMPLATE = re.compile(r"\{\{\s*\.(\w+)\s*(\|\s*urlquery\s*)?\}\}")
_VAR = re.compile(r"\$\((\w+)\)")


def render(directory: Path, kubectl: str) -> list[dict]:
    """The objects `kubectl kustomize directory` produces."""
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def find(objs: list[dict], kind: str, name: str) -> dict:
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise LookupError(f"the overlay has no {kind} {name!r}")


def _fill(template: str, values: dict[str, str], where: str) -> str:
    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"{where} needs secret value {m.group(1)!r}, which the test does not fill")
        v = values[m.group(1)]
        return quote(v, safe="") if m.group(2) else v

    out = _TEMPLATE.sub(one, template)
    if "{{" in out:
        raise ValueError(f"{where}: template function this helper does not know: {template!r}")
    return out


def external_secrets(objs: list[dict], values: dict[str, str]) -> dict[str, dict[str, str]]:
    """Secret name -> data, as External Secrets would write it from `values` (one per `secretKey`)."""
    out = {}
    for o in objs:
        if o["kind"] != "ExternalSecret":
            continue
        spec = o["spec"]
        keys = {d["secretKey"]: values.get(d["secretKey"]) for d in spec.get("data", [])}
        missing = [k for k, v in keys.items() if v is None]
        if missing:
            raise KeyError(f"ExternalSecret {o['metadata']['name']} needs {missing}; give the test values for them")
        template = (spec["target"].get("template") or {}).get("data")
        where = f"ExternalSecret {o['metadata']['name']}"
        data = {k: _fill(v, keys, where) for k, v in template.items()} if template else dict(keys)
        out[spec["target"].get("name", o["metadata"]["name"])] = data
    return out


def _config_maps(objs: list[dict]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data") or {} for o in objs if o["kind"] == "ConfigMap"}


@dataclass(frozen=True)
class Workload:
    """One container of a workload: what it runs, its environment, what it mounts and its limits."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ports: list[int]
    mounts: list[str]
    cpu_limit: float | None = None
    used: frozenset[str] = field(default_factory=frozenset)  # table entries this workload needed

    def relocated(self, table: dict[str, str], listen: str | None = None, mounts: Path | None = None) -> Workload:
        """Addresses from `table` (in-cluster host:port -> loopback host:port), the container's own
        --host/--port rebound to `listen`, each mount path moved under `mounts`."""
        used = set()

        def move(s: str) -> str:
            for old in sorted(table, key=len, reverse=True):  # the longest name first: svc before its prefix
                pattern = rf"(?<![\w.-]){re.escape(old)}(?![\w.-])"
                if re.search(pattern, s):
                    used.add(old)
                    s = re.sub(pattern, table[old], s)
            if mounts is not None and self.mounts:  # one pass, so a moved path is never moved again
                paths = "|".join(re.escape(p) for p in sorted(self.mounts, key=len, reverse=True))
                moved = lambda m: str(mounts / m.group(0).strip("/").replace("/", "_"))  # noqa: E731
                s = re.sub(rf"(?<![\w/])(?:{paths})(?=/|$)", moved, s)
            return s

        argv = [move(a) for a in self.argv]
        if listen is not None:
            argv = _rebind(argv, listen, self.ports)
        return replace(self, argv=argv, env={k: move(v) for k, v in self.env.items()}, used=frozenset(used))


def _rebind(argv: list[str], listen: str, ports: list[int]) -> list[str]:
    host, _, port = listen.rpartition(":")
    out, seen = [], set()
    it = iter(argv)
    for a in it:
        flag, eq, value = a.partition("=")
        if flag in ("--host", "--port"):
            value = value if eq else next(it)
            if flag == "--port" and int(value) not in ports:
                raise ValueError(f"the container listens on {value}, which is not one of its ports {ports}")
            new = host if flag == "--host" else port
            out += [f"{flag}={new}"] if eq else [flag, new]
            seen.add(flag)
        else:
            out.append(a)
    if seen != {"--host", "--port"}:
        raise ValueError(f"cannot tell where {argv} listens: it sets {sorted(seen) or 'neither --host nor --port'}")
    return out


def _expand(s: str, env: dict[str, str]) -> str:
    # Kubernetes leaves $(X) as it is when X is not defined; so does this.
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), s)


def _cpu(limit) -> float | None:
    if limit is None:
        return None
    s = str(limit)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


def workload(
    objs: list[dict], kind: str, name: str, secrets: dict[str, dict[str, str]], container: str | None = None
) -> Workload:
    """The first container (or `container`) of a Deployment/Job/StatefulSet/CronJob, resolved."""
    obj = find(objs, kind, name)
    template = obj["spec"]["jobTemplate"]["spec"]["template"] if kind == "CronJob" else obj["spec"]["template"]
    pod = template["spec"]
    c = next(c for c in pod["containers"] if container in (None, c["name"]))
    maps = _config_maps(objs)

    def source(ref: dict, secret: bool) -> dict[str, str]:
        table = secrets if secret else maps
        what = "Secret" if secret else "ConfigMap"
        if ref["name"] not in table:
            if ref.get("optional"):
                return {}
            raise LookupError(f"{kind} {name} reads {what} {ref['name']!r}, which nothing in the overlay makes")
        return table[ref["name"]]

    env: dict[str, str] = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            data = source(src["configMapRef"], secret=False)
        else:
            data = source(src["secretRef"], secret=True)
        env.update({src.get("prefix", "") + k: v for k, v in data.items()})
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = _expand(str(e["value"]), env)
            continue
        ref = e["valueFrom"]
        if "configMapKeyRef" in ref:
            r, data = ref["configMapKeyRef"], source(ref["configMapKeyRef"], secret=False)
        elif "secretKeyRef" in ref:
            r, data = ref["secretKeyRef"], source(ref["secretKeyRef"], secret=True)
        else:
            raise ValueError(f"{kind} {name}: env {e['name']} comes from {list(ref)}, which a process cannot read")
        if r["key"] not in data:
            raise LookupError(f"{kind} {name}: env {e['name']} wants key {r['key']!r} of {r['name']!r}, absent")
        env[e["name"]] = data[r["key"]]
    argv = [_expand(str(a), env) for a in (c.get("command") or []) + (c.get("args") or [])]
    return Workload(
        name=name,
        argv=argv,
        env=env,
        ports=[p["containerPort"] for p in c.get("ports", [])],
        mounts=[m["mountPath"] for m in c.get("volumeMounts", [])],
        cpu_limit=_cpu(((c.get("resources") or {}).get("limits") or {}).get("cpu")),
    )


# --------------------------------------------------------------------------- the Ingress's retry policy

_MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True)
class RetryPolicy:
    """Traefik's retry middleware as the Ingress names it: `attempts` tries in all (the first included),
    on a broken upstream connection and on an answer whose status is in `status`; POST and PATCH only
    with `non_idempotent`. The default (no middleware) is one try."""

    attempts: int = 1
    status: frozenset[int] = frozenset()
    non_idempotent: bool = False
    on_network_error: bool = True

    def retries(self, method: str, status: int, tries: int) -> bool:
        """Whether an answer of `status` (502 for a connection that broke mid-request) after `tries`
        tries goes to the next replica."""
        if tries >= self.attempts or (method.upper() not in IDEMPOTENT and not self.non_idempotent):
            return False
        return status in self.status or (status == 502 and self.on_network_error and not self.status)


def _statuses(values: list) -> frozenset[int]:
    out: set[int] = set()
    for v in values:
        lo, _, hi = str(v).partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


def ingress_retry(objs: list[dict], ingress: str = "detector") -> RetryPolicy:
    """The retry policy of Ingress `ingress`: its Traefik middlewares (`<namespace>-<name>@kubernetescrd`)
    looked up among `objs`; a middleware it names and the objects lack is an error, as Traefik refuses
    the route then."""
    ing = find(objs, "Ingress", ingress)
    refs = [r.strip() for r in (ing["metadata"].get("annotations") or {}).get(_MIDDLEWARES, "").split(",") if r]
    middlewares = {
        f"{o['metadata'].get('namespace', 'default')}-{o['metadata']['name']}@kubernetescrd": o
        for o in objs
        if o["kind"] == "Middleware"
    }
    policy = RetryPolicy()
    for ref in refs:
        if ref not in middlewares:
            raise LookupError(f"Ingress {ingress} names middleware {ref!r}, which the overlay does not make")
        retry = middlewares[ref]["spec"].get("retry")
        if retry:
            policy = RetryPolicy(
                attempts=int(retry["attempts"]),
                status=_statuses(retry.get("status", [])),
                non_idempotent=bool(retry.get("retryNonIdempotentMethod", False)),
                on_network_error=not retry.get("disableRetryOnNetworkError", False),
            )
    return policy
