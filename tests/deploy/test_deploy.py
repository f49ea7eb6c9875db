#!/usr/bin/env python3
"""Deploy tests (meson suite 'deploy'), one program per area, TAP output.

  test_deploy.py build      BUILD   kubectl kustomize builds both overlays; generated files fresh
  test_deploy.py schema     BUILD   every object validates, unknown fields refused (+ negative controls)
  test_deploy.py policy     BUILD   limits, probes, non-root, read-only root, PDBs, secrets, scaling
  test_deploy.py topics     BUILD   KafkaTopics and KafkaUsers agree with topics.json and the table
  test_deploy.py agreement  BUILD   HL_* set are known, required ones set, ports match HL_ADMIN_ADDR
  test_deploy.py start      BUILD   each container command starts with its manifest's env, /healthz
  test_deploy.py alerts     BUILD   promtool test rules: every alert fires on a synthetic history
  test_deploy.py dockerfile BUILD   Dockerfile lint and runtime packages == scripts/deploy-libs

Exit 77 (skip) when a tool the area needs is missing; never passes without running.
"""
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


def need_kubectl(t):
    if not shutil.which("kubectl"):
        t.bail_skip("kubectl is not installed (scripts/bootstrap installs kubernetes-client)")


def overlays(t):
    need_kubectl(t)
    built = {}
    for o in C.OVERLAYS:
        try:
            built[o] = C.build_overlay(o)
        except Exception as e:  # noqa: BLE001
            t.ok(False, "kubectl kustomize overlays/%s" % o, e)
    return built


def workloads(objs):
    """(Deployment or Job, pod spec) pairs of a build."""
    return [(d, d["spec"]["template"]["spec"]) for d in objs if d["kind"] in ("Deployment", "Job")]


# ---------------------------------------------------------------- build
def case_build(t, build):
    need_kubectl(t)
    for o in C.OVERLAYS:
        try:
            objs = C.build_overlay(o)
            kinds = sorted({x["kind"] for x in objs})
            t.ok(len(objs) >= 4, "kubectl kustomize overlays/%s builds %d objects (%s)" % (o, len(objs), ", ".join(kinds)))
        except Exception as e:  # noqa: BLE001
            t.ok(False, "kubectl kustomize overlays/%s" % o, e)
    r = subprocess.run([os.path.join(C.ROOT, "scripts/gen-deploy"), "--check"], capture_output=True, text=True)
    t.ok(r.returncode == 0, "generated files are fresh (scripts/gen-deploy --check)", r.stderr)


# ---------------------------------------------------------------- schema
def run_validator(objs, tmp):
    path = os.path.join(tmp, "objects.json")
    with open(path, "w") as f:
        json.dump(objs, f)
    return subprocess.run(["node", os.path.join(C.ROOT, "tests/deploy/validate.js"), path, C.CRD_DIR],
                          capture_output=True, text=True, timeout=120)


def case_schema(t, build):
    if not shutil.which("node"):
        t.bail_skip("node is not installed")
    if not os.path.isdir(os.path.join(C.ROOT, "tools/npm/node_modules/kubernetes-models")):
        t.bail_skip("tools/npm/node_modules lacks kubernetes-models (run scripts/bootstrap)")
    if not os.path.isdir(C.CRD_DIR):
        t.bail_skip("CRD schemas not found at " + C.CRD_DIR)
    built = overlays(t)
    tmp = C.tmpdir()
    try:
        for o, objs in built.items():
            r = run_validator(objs, tmp)
            lines = [line for line in r.stdout.splitlines() if re.match(r"^(not )?ok ", line)]
            for line in lines:
                good = line.startswith("ok ")
                name = re.sub(r"^(not )?ok \d+ - ", "", line)
                t.ok(good, "%s: %s" % (o, name), r.stdout)
            t.ok(r.returncode == 0 and lines, "%s: validator ran over %d objects" % (o, len(lines)), r.stderr[-1500:])
        # Negative controls: the same validator must refuse an unknown field and a wrong type.
        objs = built.get("prod", [])
        muts = []
        dep = copy.deepcopy(next(o for o in objs if o["kind"] == "Deployment"))
        dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
        muts.append(("unknown container field in a Deployment", dep))
        dep2 = copy.deepcopy(next(o for o in objs if o["kind"] == "Deployment"))
        dep2["spec"]["replicas"] = "two"
        muts.append(("string replicas in a Deployment", dep2))
        for kind in ("KafkaTopic", "KafkaUser", "ScaledObject", "PrometheusRule", "PodMonitor", "Kafka"):
            o = next((x for x in objs if x["kind"] == kind), None)
            if o is None:
                continue
            m = copy.deepcopy(o)
            m["spec"]["unknownField"] = 1
            muts.append(("unknown spec field in a %s" % kind, m))
        for what, m in muts:
            r = run_validator([m], tmp)
            t.ok(r.returncode != 0 and "not ok 1" in r.stdout, "negative control refused: " + what, r.stdout)
    finally:
        C.rmtree(tmp)


# ---------------------------------------------------------------- policy
def case_policy(t, build):
    built = overlays(t)
    tbl = C.table()
    parts = {tp["name"]: tp["partitions"] for tp in C.topics()}
    for o, objs in built.items():
        pdbs = C.by_kind(objs, "PodDisruptionBudget")
        nps = C.by_kind(objs, "NetworkPolicy")
        sas = {s["metadata"]["name"] for s in C.by_kind(objs, "ServiceAccount")}
        for dep, pod in workloads(objs):
            name = "%s: Deployment %s" % (o, dep["metadata"]["name"])
            labels = dep["spec"]["template"]["metadata"]["labels"]
            sel = dep["spec"].get("selector", {}).get("matchLabels", {})
            is_dep = dep["kind"] == "Deployment"
            name = "%s: %s %s" % (o, dep["kind"], dep["metadata"]["name"])
            if is_dep:
                t.ok(all(labels.get(k) == v for k, v in sel.items()), name + ": selector matches the pod labels")
            psc = pod.get("securityContext", {})
            t.ok(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name + ": seccomp RuntimeDefault")
            t.ok(pod.get("serviceAccountName") in sas, name + ": own ServiceAccount exists",
                 pod.get("serviceAccountName"))
            t.ok(pod.get("automountServiceAccountToken") is False, name + ": no API token mounted")
            aff = pod.get("affinity", {}).get("podAntiAffinity", {})
            t.ok(not is_dep or bool(aff.get("preferredDuringSchedulingIgnoredDuringExecution")
                      or aff.get("requiredDuringSchedulingIgnoredDuringExecution")), name + ": pod anti-affinity")
            for c in pod["containers"]:
                cn = "%s container %s" % (name, c["name"])
                res = c.get("resources", {})
                t.ok(all(res.get(a, {}).get(b) for a in ("requests", "limits") for b in ("cpu", "memory")),
                     cn + ": cpu and memory requests and limits", res)
                lp, rp = c.get("livenessProbe"), c.get("readinessProbe")
                t.ok(lp and rp and lp.get("httpGet", {}).get("path") == "/healthz"
                     and rp.get("httpGet", {}).get("path") == "/readyz" and lp != rp,
                     cn + ": liveness /healthz and readiness /readyz differ", (lp, rp))
                sc = c.get("securityContext", {})
                t.ok(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
                     and sc.get("runAsUser", psc.get("runAsUser", 0)) != 0, cn + ": runs as non-root")
                t.ok(sc.get("readOnlyRootFilesystem") is True, cn + ": read-only root filesystem")
                t.ok(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc.get("capabilities", {}).get("add")
                     and sc.get("allowPrivilegeEscalation") is False, cn + ": drops ALL capabilities, no escalation")
                t.ok(":" in c["image"] and not c["image"].endswith(":latest"), cn + ": image pinned (not latest)")
                env, src = C.container_env(objs, c)
                inline = [k for k in env if re.search(r"PASSWORD|SECRET|TOKEN$|PRIVATE|ACCESS_KEY", k)
                          and not k.endswith("_FILE") and src[k] in ("value", "configmap") and env[k]]
                raw = [e for e in c.get("env", []) if "value" in e]
                raw += [{"name": k, "value": v} for k, v in env.items() if src[k].startswith("configmap")]
                inline += [e["name"] for e in raw if re.search(r"(password|secret)=(?!\$\()", e["value"] or "", re.I)]
                t.ok(not inline, cn + ": secrets only by reference", inline)
                binary, _ = C.container_binary(c)
                if binary and binary != "hl-devbroker":
                    cfg = C.binary_config(C.binary_path(build, binary)) if C.binary_path(build, binary) else None
                    def setting(var):
                        return env.get(var) or (cfg or {}).get(var, {}).get("default")
                    drain = setting("HL_DRAIN_TIMEOUT") or setting("HL_API_DRAIN_TIMEOUT")
                    shut = setting("HL_NOTIFIER_SHUTDOWN_TIMEOUT")
                    close = setting("HL_WORKER_CLOSE_TIMEOUT")
                    # A worker's worst case is its drain, then the bounded commit and close.
                    if drain and close:
                        drain = "%ss" % (C.parse_duration_s(drain) + C.parse_duration_s(close))
                    worst = max(C.parse_duration_s(x) for x in (drain, shut) if x) if (drain or shut) else None
                    if worst is None:
                        t.skip(cn + ": grace period > drain timeout", "binary not built and no drain set")
                    else:
                        t.ok(pod.get("terminationGracePeriodSeconds", 30) > worst,
                             cn + ": terminationGracePeriodSeconds %s > drain (+ close) %ss"
                             % (pod.get("terminationGracePeriodSeconds", 30), worst))
            pl = labels
            if is_dep:
                t.ok(any(all(pl.get(k) == v for k, v in p["spec"]["selector"].get("matchLabels", {}).items())
                         for p in pdbs), name + ": a PodDisruptionBudget covers it")
            t.ok(any(n["spec"]["podSelector"].get("matchLabels") and all(
                pl.get(k) == v for k, v in n["spec"]["podSelector"]["matchLabels"].items())
                and "app.kubernetes.io/name" in n["spec"]["podSelector"]["matchLabels"] for n in nps),
                name + ": its own NetworkPolicy")
        t.ok(not [s for s in C.by_kind(objs, "Secret") if s.get("data") or s.get("stringData")],
             "%s: no Secret with inline data" % o)
        for so in C.by_kind(objs, "ScaledObject"):
            target = so["spec"]["scaleTargetRef"]["name"]
            w = next((b for b in tbl["binaries"] if b["name"] == target), None)
            t.ok(w is not None and C.find(objs, "Deployment", target) is not None,
                 "%s: ScaledObject %s targets a worker Deployment" % (o, target))
            if w and w.get("input"):
                t.ok(so["spec"]["maxReplicaCount"] <= parts[w["input"]],
                     "%s: ScaledObject %s max %d <= %d partitions of %s"
                     % (o, target, so["spec"]["maxReplicaCount"], parts[w["input"]], w["input"]))
                q = so["spec"]["triggers"][0]["metadata"].get("query", "")
                t.ok('group="%s"' % w["group"] in q and "hl_consumer_lag_messages" in q,
                     "%s: ScaledObject %s scales on its group's lag" % (o, target), q)
    if "prod" in built:
        # A worker whose volume holds only the SQLite warehouse scales too on Snowflake.
        workers = [b for b in tbl["binaries"] if b.get("input") and (not b.get("state") or b.get("snowflake_prod"))]
        sos = {s["spec"]["scaleTargetRef"]["name"] for s in C.by_kind(built["prod"], "ScaledObject")}
        for w in workers:
            t.ok(w["name"] in sos, "prod: consumer %s has a ScaledObject" % w["name"])
    if "prod" in built:
        policy_api(t, built["prod"], tbl)
        policy_cronjobs(t, built["prod"], tbl)
    if "dev" in built:
        t.ok(not C.by_kind(built["dev"], "Kafka") and not C.by_kind(built["dev"], "ScaledObject"),
             "dev: no Strimzi Kafka and no autoscaling")
        t.ok(all(d["spec"].get("replicas", 1) == 1 for d in C.by_kind(built["dev"], "Deployment")),
             "dev: one replica")


def matches(sel, lab):
    return bool(sel) and all(lab.get(k) == v for k, v in sel.items())


def policy_api(t, objs, tbl):
    """HTTP services in prod: Service, CPU autoscaling, TLS Ingress, ingress-controller-only traffic."""
    for w in [b for b in tbl["binaries"] if b["kind"] == "service"]:
        name = w["name"]
        dep = C.find(objs, "Deployment", name)
        t.ok(dep is not None, "prod: %s has a Deployment" % name)
        if not dep:
            continue
        plab = dep["spec"]["template"]["metadata"]["labels"]
        c = dep["spec"]["template"]["spec"]["containers"][0]
        cports = {p["name"]: p["containerPort"] for p in c["ports"]}
        svc = C.find(objs, "Service", name)
        t.ok(svc is not None and matches(svc["spec"]["selector"], plab)
             and all(p["targetPort"] in cports for p in svc["spec"]["ports"]),
             "prod: Service %s selects the API pods and targets a container port" % name, svc)
        hpa = C.find(objs, "HorizontalPodAutoscaler", name)
        t.ok(hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == name
             and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
             and any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
             and 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"],
             "prod: %s scales on CPU (HorizontalPodAutoscaler, not KEDA lag)" % name, hpa)
        t.ok(not [s for s in C.by_kind(objs, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name],
             "prod: no ScaledObject fights the HPA of %s" % name)
        t.ok("cpu" in c["resources"]["requests"], "prod: %s requests CPU (the HPA's base)" % name)
        ing = C.find(objs, "Ingress", name)
        ok = ing is not None
        if ok:
            ann = ing["metadata"].get("annotations", {})
            tls = ing["spec"].get("tls", [])
            hosts = {r.get("host") for r in ing["spec"]["rules"]}
            backends = [p["backend"]["service"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
            ok = bool(tls) and all(x.get("secretName") for x in tls) and hosts <= {h for x in tls for h in x["hosts"]} \
                and ("cert-manager.io/cluster-issuer" in ann or "cert-manager.io/issuer" in ann) \
                and all(b["name"] == name and b["port"].get("name") in [p["name"] for p in svc["spec"]["ports"]]
                        for b in backends) and backends
        t.ok(ok, "prod: Ingress %s: TLS for every host (cert-manager), backends are the API Service" % name, ing)
        exposed = [p["path"] for r in (ing or {"spec": {"rules": []}})["spec"]["rules"] for p in r["http"]["paths"]]
        t.ok(exposed and all(p.startswith("/v1") for p in exposed),
             "prod: Ingress %s exposes only the API (/v1), not /metrics or the probes" % name, exposed)
        nps = [n for n in C.by_kind(objs, "NetworkPolicy") if matches(n["spec"]["podSelector"].get("matchLabels"), plab)
               and "app.kubernetes.io/name" in n["spec"]["podSelector"]["matchLabels"]]
        ic = w["ingress_from"]
        rules = [r for n in nps for r in n["spec"].get("ingress", [])]
        good = True
        for r in rules:
            for f in r.get("from", []):
                ns = f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                if ns == ic["namespace"]:
                    good &= f.get("podSelector", {}).get("matchLabels") == ic["pod_labels"]
                elif ns != "monitoring":
                    good = False
        t.ok(nps and rules and good and any(
            f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == ic["namespace"]
            for r in rules for f in r.get("from", [])),
            "prod: %s takes traffic only from the ingress controller (and the monitoring scrape)" % name, rules)


def policy_cronjobs(t, objs, tbl):
    """The dbt CronJob: its own pinned image, no overlap, bounded retries and history, key by Secret."""
    crons = C.by_kind(objs, "CronJob")
    t.ok(any(cj["metadata"]["name"] == "hl-dbt" for cj in crons), "prod: a CronJob runs dbt")
    sas = {s["metadata"]["name"] for s in C.by_kind(objs, "ServiceAccount")}
    for cj in crons:
        name = "prod: CronJob %s" % cj["metadata"]["name"]
        spec = cj["spec"]
        job = spec["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        t.ok(spec.get("concurrencyPolicy") == "Forbid", name + ": concurrencyPolicy Forbid")
        t.ok(isinstance(job.get("backoffLimit"), int) and job["backoffLimit"] <= 6, name + ": a backoff limit")
        t.ok(isinstance(spec.get("successfulJobsHistoryLimit"), int) and isinstance(spec.get("failedJobsHistoryLimit"), int),
             name + ": history limits")
        t.ok(job.get("activeDeadlineSeconds"), name + ": a deadline per run")
        t.ok(pod.get("serviceAccountName") in sas and pod.get("automountServiceAccountToken") is False,
             name + ": own ServiceAccount, no API token")
        psc = pod.get("securityContext", {})
        t.ok(psc.get("runAsNonRoot") is True and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
             name + ": non-root, seccomp RuntimeDefault")
        plab = job["template"]["metadata"]["labels"]
        t.ok(any(matches(n["spec"]["podSelector"].get("matchLabels"), plab) for n in C.by_kind(objs, "NetworkPolicy")),
             name + ": its own NetworkPolicy")
        for c in pod["containers"]:
            cn = "%s container %s" % (name, c["name"])
            res = c.get("resources", {})
            t.ok(all(res.get(a, {}).get(b) for a in ("requests", "limits") for b in ("cpu", "memory")),
                 cn + ": cpu and memory requests and limits")
            sc = c.get("securityContext", {})
            t.ok(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
                 and sc.get("capabilities", {}).get("drop") == ["ALL"], cn + ": read-only root, no privileges")
            img = c["image"]
            t.ok(":" in img.rsplit("/", 1)[-1] and not img.endswith(":latest") and img != tbl["image"],
                 cn + ": its own pinned image (%s), not the Healthlake image" % img)
            if cj["metadata"]["name"] == "hl-dbt":
                t.ok(c.get("command", []) + c.get("args", []) ==
                     ["dbt", "build", "--project-dir", "/dbt", "--profiles-dir", "/dbt"],
                     cn + ": runs dbt build --project-dir /dbt --profiles-dir /dbt", c.get("command"))
                env, src = C.container_env(objs, c)
                key = env.get("SNOWFLAKE_PRIVATE_KEY_PATH", "")
                vols = {v["name"]: v for v in pod.get("volumes", [])}
                mounted = [m for m in c.get("volumeMounts", []) if key.startswith(m["mountPath"].rstrip("/") + "/")
                           and "secret" in vols.get(m["name"], {})]
                t.ok(mounted and mounted[0].get("readOnly") is True and any(
                    i["path"] == key[len(mounted[0]["mountPath"].rstrip("/")) + 1:]
                    for i in vols[mounted[0]["name"]]["secret"].get("items", [{"path": key.rsplit("/", 1)[-1]}])),
                    cn + ": the Snowflake private key %s is a Secret mounted read-only" % key)
                t.ok(src.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "").startswith("secret:"),
                     cn + ": the key passphrase comes from a Secret")
                t.ok(all(env.get(v, "").startswith("/tmp") for v in ("DBT_TARGET_PATH", "DBT_LOG_PATH"))
                     and any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])),
                     cn + ": dbt writes its target and logs to the /tmp volume (read-only root)")
    df = os.path.join(C.ROOT, "deploy/docker/dbt.Dockerfile")
    text = open(df).read() if os.path.exists(df) else ""
    t.ok("COPY" in text and "/dbt" in text and re.search(r"^USER\s+\d+", text, re.M)
         and re.search(r"dbt-snowflake:\d+\.\d+\.\d+", text),
         "deploy/docker/dbt.Dockerfile: pinned dbt-snowflake base, project in /dbt, non-root user")
    prof = os.path.join(C.ROOT, "dbt/snowflake/profiles.example.yml")
    if not os.path.exists(prof):
        t.skip("dbt profile reads the key path and passphrase the CronJob sets", "dbt/snowflake is not on this branch yet")
    else:
        ptxt = open(prof).read()
        t.ok("SNOWFLAKE_PRIVATE_KEY_PATH" in ptxt and "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" in ptxt,
             "dbt profile reads the key path and passphrase the CronJob sets")


# ---------------------------------------------------------------- topics
def case_topics(t, build):
    built = overlays(t)
    objs = built.get("prod", [])
    src = {tp["name"]: tp for tp in C.topics()}
    kts = {k["spec"].get("topicName", k["metadata"]["name"]): k for k in C.by_kind(objs, "KafkaTopic")}
    t.ok(set(kts) == set(src), "KafkaTopics are exactly the topics of topics.json",
         "manifests: %s\ntopics.json: %s" % (sorted(kts), sorted(src)))
    for name, tp in src.items():
        k = kts.get(name)
        if not k:
            t.ok(False, "KafkaTopic for %s" % name)
            continue
        cfg = k["spec"].get("config", {})
        t.ok(k["spec"]["partitions"] == tp["partitions"] and k["spec"]["replicas"] == tp["replication_factor"]
             and int(cfg.get("retention.ms")) == tp["retention_ms"]
             and int(cfg.get("retention.bytes")) == tp["retention_bytes"]
             and cfg.get("cleanup.policy") == tp["cleanup_policy"]
             and int(cfg.get("min.insync.replicas")) == tp["min_insync_replicas"],
             "KafkaTopic %s: partitions, replicas, retention, policy, min ISR as topics.json" % name, k["spec"])
        t.ok(cfg.get("compression.type") == "producer",
             "KafkaTopic %s keeps the producers' lz4 sets (compression.type=producer)" % name, cfg)
        t.ok(k["metadata"]["labels"].get("strimzi.io/cluster") == C.table()["kafka_cluster"],
             "KafkaTopic %s belongs to the cluster" % name)
    users = {u["metadata"]["name"]: u for u in C.by_kind(objs, "KafkaUser")}
    replay = built.get("dlq-replay", [])
    users.update({u["metadata"]["name"]: u for u in C.by_kind(replay, "KafkaUser")})
    for dep, pod in workloads(objs) + workloads(replay):
        c = pod["containers"][0]
        env, src_ = C.container_env(objs, c)
        if "HL_KAFKA_BROKERS" not in env:
            continue
        name = dep["metadata"]["name"]
        u = users.get(name)
        objs_ = replay if dep["kind"] == "Job" else objs
        t.ok(u is not None, "Kafka client %s has a KafkaUser" % name)
        if not u:
            continue
        acls = u["spec"]["authorization"]["acls"]
        topics_acl = {a["resource"]["name"]: set(a["operations"]) for a in acls if a["resource"]["type"] == "topic"}
        t.ok(all(a["resource"].get("patternType", "literal") == "literal" for a in acls if "name" in a["resource"])
             and not any("All" in a["operations"] for a in acls)
             and not any(a["resource"].get("name") == "*" for a in acls),
             "KafkaUser %s: literal names only, no All, no wildcard" % name, acls)
        w = next((b for b in C.table()["binaries"] if b["name"] == name), None)
        if w is None:
            # The DLQ replay: reads hl.dlq, writes only topics some worker consumes.
            tps = C.topics()
            stages = set(next(tp for tp in tps if tp["name"] == "hl.dlq")["producers"])
            consumed = {tp["name"] for tp in tps if set(tp["consumers"]) & stages}
            t.ok(topics_acl.get("hl.dlq") == {"Read", "Describe"} and all(
                ops == {"Write", "Describe"} and tp in consumed for tp, ops in topics_acl.items() if tp != "hl.dlq"),
                "KafkaUser %s: reads hl.dlq, writes only stage inputs" % name, topics_acl)
            t.ok(env.get("HL_PT_OUTPUT_TOPIC") in topics_acl and env.get("HL_PT_INPUT_TOPIC") == "hl.dlq",
                 "KafkaUser %s allows the Job's input and output topics" % name)
            continue
        want = {}
        if w.get("input"):
            want[w["input"]] = {"Read", "Describe"}
        for p in w.get("produces", []):
            want.setdefault(p, set()).update({"Write", "Describe"})
        for p in w.get("reads", []):
            want.setdefault(p, set()).update({"Read", "Describe"})
        t.ok(topics_acl == want, "KafkaUser %s: topic ACLs are exactly its data flow" % name,
             "acls %s\nwant %s" % (topics_acl, want))
        # The topics the binary is configured with are the ones its ACLs allow.
        for var in [k for k in env if re.fullmatch(r"HL_[A-Z]+_(INPUT|OUTPUT|STATUS|COMMITTED)_TOPIC|HL_NOTIFIER_TOPIC|HL_KAFKA_DLQ_TOPIC", k)]:
            t.ok(env[var] in topics_acl, "KafkaUser %s allows %s=%s" % (name, var, env[var]))
        bpath = C.binary_path(build, name)
        if bpath:
            cfg = C.binary_config(bpath)
            for var, meta in cfg.items():
                if re.fullmatch(r"HL_[A-Z0-9]+_(INPUT|OUTPUT|STATUS|COMMITTED)_TOPIC|HL_NOTIFIER_TOPIC", var) and var not in env:
                    t.ok(meta["default"] in topics_acl, "KafkaUser %s allows default %s=%s" % (name, var, meta["default"]))


# ---------------------------------------------------------------- agreement
def admin_port(env, var="HL_ADMIN_ADDR"):
    addr = env.get(var, "")
    m = re.search(r":(\d+)$", addr)
    return int(m.group(1)) if m else None


def case_agreement(t, build):
    built = overlays(t)
    for o, objs in built.items():
        for dep, pod in workloads(objs):
            for c in pod["containers"]:
                binary, _ = C.container_binary(c)
                cn = "%s: %s container %s" % (o, dep["metadata"]["name"], c["name"])
                if not binary:
                    t.ok(False, cn + ": command runs a Healthlake binary", c.get("command"))
                    continue
                path = C.binary_path(build, binary)
                if not path:
                    t.skip(cn + ": env agrees with %s" % binary, binary + " is not built")
                    continue
                cfg = C.binary_config(path)
                env, src = C.container_env(objs, c)
                hl = [k for k in env if k.startswith(("HL_", "AWS_"))]
                unknown = [k for k in hl if k not in cfg]
                t.ok(not unknown, cn + ": every HL_*/AWS_* it sets is known to %s (%d set)" % (binary, len(hl)), unknown)
                if "HL_KAFKA_BROKERS" not in cfg or binary == "hl-devbroker":
                    pass
                missing = [k for k, m in cfg.items() if m["required"] and k not in env]
                t.ok(not missing, cn + ": every required variable is set", missing)
                av = C.addr_var(binary)
                t.ok(av in cfg, cn + ": %s knows its listen variable %s" % (binary, av))
                port = admin_port(env, av) or admin_port({av: cfg.get(av, {}).get("default") or ""}, av)
                ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
                probe_ports = [c[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe", "startupProbe") if p in c]
                t.ok(port is not None and all(ports.get(pp, pp) == port for pp in probe_ports),
                     cn + ": probes use %s's port %s" % (av, port), (ports, probe_ports))
                t.ok(env.get(av, "").startswith("0.0.0.0:"),
                     cn + ": /metrics, /healthz, /readyz served on the pod address (%s=%s)" % (av, env.get(av)))
                # The replay Job runs in the prod namespace: prod's PodMonitor scrapes it.
                monitors = C.by_kind(objs, "PodMonitor") + (C.by_kind(built.get("prod", []), "PodMonitor")
                                                             if o == "dlq-replay" else [])
                mons = [m for m in monitors if all(
                    dep["spec"]["template"]["metadata"]["labels"].get(k) == v
                    for k, v in m["spec"]["selector"]["matchLabels"].items())]
                eps = [e["port"] for m in mons for e in m["spec"]["podMetricsEndpoints"]]
                t.ok(any(ports.get(e) == port for e in eps), cn + ": a PodMonitor scrapes /metrics on port %s" % port, eps)
        # Every worker ConfigMap, used or not, holds only variables its binary knows.
        for cm in C.by_kind(objs, "ConfigMap"):
            m = re.fullmatch(r"(hl-[a-z0-9-]+)-config", cm["metadata"]["name"])
            if not m or m.group(1) not in {b["name"] for b in C.table()["binaries"]}:
                continue  # not a Healthlake binary's settings (e.g. hl-dbt-config, dbt's)
            path = C.binary_path(build, m.group(1))
            if not path:
                t.skip("%s: ConfigMap %s" % (o, cm["metadata"]["name"]), m.group(1) + " is not built")
                continue
            cfg = C.binary_config(path)
            unknown = [k for k in cm.get("data", {}) if k not in cfg]
            t.ok(not unknown, "%s: ConfigMap %s holds only variables %s knows" % (o, cm["metadata"]["name"], m.group(1)), unknown)
    # The dev pod's hl-devbroker reads the topic file where the image puts it.
    if "dev" in built:
        dep = C.find(built["dev"], "Deployment", "hl-dev")
        c = next((x for x in dep["spec"]["template"]["spec"]["containers"] if x["name"] == "hl-devbroker"), None) if dep else None
        df = open(os.path.join(C.ROOT, "deploy/docker/Dockerfile")).read()
        if c:
            env, _ = C.container_env(built["dev"], c)
            t.ok(re.search(r"COPY schemas/topics/topics.json " + re.escape(env.get("HL_DEVBROKER_TOPICS_FILE", "?")), df) is not None,
                 "dev: HL_DEVBROKER_TOPICS_FILE is where the image holds topics.json")
    # Every image file a manifest names is one the Dockerfile puts there.
    df = open(os.path.join(C.ROOT, "deploy/docker/Dockerfile")).read()
    for o, objs in built.items():
        for dep, pod in workloads(objs):
            for c in pod["containers"]:
                env, _ = C.container_env(objs, c)
                for k, v in env.items():
                    if v.startswith("/usr/share/healthlake/"):
                        t.ok(v in C.IMAGE_FILES and C.IMAGE_FILES[v] in C.dockerfile_files(df),
                             "%s: %s %s=%s is a file the image holds" % (o, c["name"], k, v))
    # Every binary of the table is in the image.
    df = open(os.path.join(C.ROOT, "deploy/docker/Dockerfile")).read()
    m = re.search(r'ARG HL_BINARIES="([^"]*)"', df)
    t.ok(m and set(m.group(1).split()) == {b["build"] for b in C.table()["binaries"]},
         "the image builds every binary of deploy/k8s/workers.yaml")


# ---------------------------------------------------------------- snowflake
def snowflake_facts():
    """What the sources say about Snowflake: the settings the client requires
    (libstream/src/snowflake.c), the roles granted to each service user
    (003_roles.sql), and per role the warehouses and schemas it may use (004_grants.sql)."""
    with open(os.path.join(C.ROOT, "libstream/src/snowflake.c")) as f:
        required = re.findall(r'!\*c\.\w+ \? "(HL_SNOWFLAKE_\w+)"', f.read())
    ddl = os.path.join(C.ROOT, "schemas/warehouse/snowflake")
    text = ""
    for n in sorted(os.listdir(ddl)):
        if re.match(r"^\d{3}_\w+\.sql$", n):
            text += re.sub(r"--[^\n]*", "", open(os.path.join(ddl, n)).read())
    flat = re.sub(r"\s+", " ", text).upper()
    user_roles = {}
    for r, u in re.findall(r"GRANT ROLE (\w+) TO USER (\w+)", flat):
        user_roles.setdefault(u, set()).add(r)
    usage = {}
    for kind, obj, r in re.findall(r"GRANT USAGE ON (WAREHOUSE|SCHEMA) ([\w.]+) TO ROLE (\w+)", flat):
        usage.setdefault(r, set()).add((kind, obj.split(".")[-1]))
    return required, user_roles, usage


def snowflake_problems(objs, pod, c, cfg, facts):
    """Why a container on the Snowflake warehouse would not work, or not safely."""
    required, user_roles, usage = facts
    env, src = C.container_env(objs, c)
    if env.get("HL_WAREHOUSE_BACKEND") != "snowflake":
        return None
    probs = []
    # The client's required settings and those that pick the user's role, warehouse and schema.
    need = required + ["HL_SNOWFLAKE_ROLE", "HL_SNOWFLAKE_WAREHOUSE", "HL_SNOWFLAKE_DATABASE", "HL_SNOWFLAKE_SCHEMA"]
    for k in need:
        if not env.get(k):
            probs.append("%s not set" % k)
        elif not src[k].startswith("configmap"):
            probs.append("%s not from a ConfigMap (%s)" % (k, src[k]))
    if src.get("HL_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "secret:").split(":")[0] != "secret":
        probs.append("the key passphrase is not from a Secret")
    key = env.get("HL_SNOWFLAKE_PRIVATE_KEY_FILE", "")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounted = [m for m in c.get("volumeMounts", []) if key.startswith(m["mountPath"].rstrip("/") + "/")
               and "secret" in vols.get(m["name"], {})]
    if not mounted or mounted[0].get("readOnly") is not True or not any(
            i["path"] == key[len(mounted[0]["mountPath"].rstrip("/")) + 1:]
            for i in vols[mounted[0]["name"]]["secret"].get("items", [{"path": key.rsplit("/", 1)[-1]}])):
        probs.append("private key %s is not a file of a Secret mounted read-only" % key)
    user, role = env.get("HL_SNOWFLAKE_USER", "").upper(), env.get("HL_SNOWFLAKE_ROLE", "").upper()
    if role not in user_roles.get(user, set()):
        probs.append("role %s is not granted to user %s (003_roles.sql)" % (role, user))
    wh = env.get("HL_SNOWFLAKE_WAREHOUSE", "").upper()
    if ("WAREHOUSE", wh) not in usage.get(role, set()):
        probs.append("role %s has no USAGE on warehouse %s (004_grants.sql)" % (role, wh))
    for var in ("HL_SNOWFLAKE_SCHEMA", "HL_API_SNOWFLAKE_SCHEMA", "HL_API_SNOWFLAKE_JOBS_SCHEMA"):
        if var not in cfg:
            continue
        sch = (env.get(var) or cfg[var].get("default") or "").upper()
        if ("SCHEMA", sch) not in usage.get(role, set()):
            probs.append("%s=%s: role %s has no USAGE on that schema (004_grants.sql)" % (var, sch, role))
    return probs


def snowflake_egress(objs, pod_labels):
    """True when a NetworkPolicy selecting the pod allows egress to TCP 443."""
    for n in C.by_kind(objs, "NetworkPolicy"):
        if not matches(n["spec"]["podSelector"].get("matchLabels"), pod_labels):
            continue
        if "Egress" not in n["spec"].get("policyTypes", []):
            continue
        for r in n["spec"].get("egress", []):
            if any(p.get("port") == 443 and p.get("protocol", "TCP") == "TCP" for p in r.get("ports", [])):
                return True
    return False


def case_snowflake(t, build):
    """prod: hl-loader and hl-api-gateway on Snowflake, dev on SQLite; the checks
    catch a missing setting, and the binaries refuse to start without it."""
    built = overlays(t)
    facts = snowflake_facts()
    t.ok(facts[0] == ["HL_SNOWFLAKE_ACCOUNT", "HL_SNOWFLAKE_USER", "HL_SNOWFLAKE_PRIVATE_KEY_FILE"],
         "libstream/src/snowflake.c names the required settings", facts[0])
    want = {"prod": {"hl-loader", "hl-api-gateway"}, "dev": set()}
    for o, objs in built.items():
        on = set()
        for dep, pod in workloads(objs):
            for c in pod["containers"]:
                binary, _ = C.container_binary(c)
                path = C.binary_path(build, binary) if binary else None
                if not path:
                    continue
                cfg = C.binary_config(path)
                probs = snowflake_problems(objs, pod, c, cfg, facts)
                if probs is None:
                    continue
                on.add(binary)
                cn = "%s: %s container %s" % (o, dep["metadata"]["name"], c["name"])
                t.ok(not probs, cn + ": Snowflake settings complete, key from a read-only Secret, "
                     "role/warehouse/schemas granted to the user", probs)
                t.ok(snowflake_egress(objs, dep["spec"]["template"]["metadata"]["labels"]),
                     cn + ": a NetworkPolicy allows egress to Snowflake (TCP 443)")
                pvcs = [v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]
                if dep["kind"] == "Deployment" and C.find(objs, "Service", dep["metadata"]["name"]):
                    req = pod.get("affinity", {}).get("podAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
                    t.ok(not pvcs and not req, cn + ": no SQLite volume, runs on any node", (pvcs, req))
                elif dep["kind"] == "Deployment":
                    # The loader keeps no state of its own on Snowflake: no volume
                    # (nor its claim), rolling updates, one replica kept up.
                    name = dep["metadata"]["name"]
                    pdb = C.find(objs, "PodDisruptionBudget", name)
                    t.ok(not pvcs and not C.find(objs, "PersistentVolumeClaim", name + "-state")
                         and dep["spec"]["strategy"]["type"] == "RollingUpdate"
                         and pdb is not None and pdb["spec"].get("minAvailable") == 1
                         and "maxUnavailable" not in pdb["spec"],
                         cn + ": no volume or claim, rolling updates, PDB keeps one up",
                         (pvcs, dep["spec"]["strategy"], pdb and pdb["spec"]))
                # The check catches each required setting removed from the ConfigMap
                # (the API schemas' defaults, CURATED and RAW, are not the API reader's)...
                env, src = C.container_env(objs, c)
                for k in facts[0] + [x for x in ("HL_API_SNOWFLAKE_SCHEMA", "HL_API_SNOWFLAKE_JOBS_SCHEMA") if x in env]:
                    broken = copy.deepcopy(objs)
                    cm = C.find(broken, "ConfigMap", src[k].split(":", 1)[1]) if src.get(k, "").startswith("configmap:") else None
                    if cm:
                        del cm["data"][k]
                    bp = snowflake_problems(broken, pod, c, cfg, facts)
                    t.ok(cm is not None and any(k in p for p in bp), cn + ": %s removed is reported" % k, bp)
                # ... and the binary itself exits 2 naming it.
                tmp = C.tmpdir()
                try:
                    lenv = local_env(env, tmp, "127.0.0.1:1", [], {"ca": "/nonexistent", "landing": tmp})
                    lenv.pop("HL_SNOWFLAKE_ACCOUNT", None)
                    full = {k: v for k, v in os.environ.items() if not k.startswith("HL_")}
                    full.update(lenv)
                    # Under ASan a leak on this path turns exit 2 into 1, so the
                    # sanitize run also checks the config-error exit frees everything.
                    try:
                        r = subprocess.run([path], env=full, capture_output=True, text=True, timeout=30)
                        rc, err = r.returncode, r.stderr
                    except subprocess.TimeoutExpired:
                        rc, err = "still running after 30s", ""
                    t.ok(rc == 2 and "HL_SNOWFLAKE_ACCOUNT" in err,
                         cn + ": %s without HL_SNOWFLAKE_ACCOUNT exits 2 naming it (exit %s)" % (binary, rc), err[-500:])
                finally:
                    C.rmtree(tmp)
        t.ok(on == want.get(o, on), "%s: on Snowflake: %s" % (o, sorted(on) or "none (SQLite)"), sorted(on))


# ---------------------------------------------------------------- start
def local_env(env, tmp, bootstrap, ports, state):
    """The manifest's environment with addresses rewritten to 127.0.0.1 and paths to tmp."""
    out = dict(env)
    for k, v in env.items():
        if k == "HL_KAFKA_BROKERS":
            out[k] = bootstrap
        elif k in ("HL_ADMIN_ADDR", "HL_API_ADDR"):
            p = C.free_port()
            ports.append(p)
            out[k] = "127.0.0.1:%d" % p
        elif k == "HL_KAFKA_PROPS":
            out[k] = re.sub(r"ssl\.ca\.location=[^,]*", "ssl.ca.location=" + state["ca"], v)
        elif v in C.IMAGE_FILES:
            out[k] = os.path.join(C.ROOT, C.IMAGE_FILES[v])
        elif k == "HL_API_JWKS_URL" and v:
            # The identity provider rewritten to a closed local port: the API still starts.
            out[k] = "http://127.0.0.1:%d/jwks.json" % C.free_port()
        elif k in ("HL_PARSER_LANDING_DIR", "HL_API_LANDING") and v.startswith("/"):
            out[k] = state["landing"]
        elif v.startswith("/"):
            out[k] = os.path.join(tmp, v.strip("/").replace("/", "_"))
    if env.get("HL_NOTIFIER_S3_BUCKET") or env.get("HL_API_LANDING", "").startswith("s3://"):
        # Production S3 rewritten to a closed local port: the notifier must still start.
        out["HL_S3_ENDPOINT"] = "http://127.0.0.1:%d" % C.free_port()
        out["HL_S3_FORCE_PATH_STYLE"] = "true"
    if out.get("HL_NOTIFIER_DIR"):
        out["HL_NOTIFIER_DIR"] = state["landing"]
    if env.get("HL_WAREHOUSE_BACKEND") == "snowflake":
        # Snowflake rewritten to a closed local port, and a key pair made where
        # the Secret would be mounted (encrypted with the passphrase the pod gets).
        out["HL_SNOWFLAKE_URL"] = "http://127.0.0.1:%d" % C.free_port()
        key = out.get("HL_SNOWFLAKE_PRIVATE_KEY_FILE")
        if key:
            cmd = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key]
            if out.get("HL_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
                cmd += ["-aes-256-cbc", "-pass", "pass:" + out["HL_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]]
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return out


def case_start(t, build):
    built = overlays(t)
    if not C.binary_path(build, "hl-devbroker"):
        t.bail_skip("hl-devbroker is not built")
    tmp = C.tmpdir()
    broker = C.DevBroker(build, tmp)
    ca = next((p for p in ("/etc/ssl/certs/ca-certificates.crt",) if os.path.exists(p)), None)
    try:
        for o, objs in built.items():
            for dep, pod in workloads(objs):
                for c in pod["containers"]:
                    binary, form = C.container_binary(c)
                    cn = "%s: %s/%s" % (o, dep["metadata"]["name"], c["name"])
                    path = C.binary_path(build, binary) if binary else None
                    if not path:
                        t.skip(cn + " starts", "%s is not built" % binary)
                        continue
                    work = os.path.join(tmp, "%s-%s" % (o, c["name"]))
                    os.makedirs(os.path.join(work, "landing"), exist_ok=True)
                    env, _ = C.container_env(objs, c)
                    ports = []
                    lenv = local_env(env, work, broker.bootstrap, ports, {"ca": ca or "/nonexistent", "landing": os.path.join(work, "landing")})
                    if binary == "hl-devbroker":
                        lenv["HL_DEVBROKER_ADDR_FILE"] = os.path.join(work, "addr")
                    full = dict(os.environ)
                    full = {k: v for k, v in full.items() if not k.startswith("HL_")}
                    full.update(lenv)
                    if form == "exec":
                        argv = [path] + c.get("args", [])
                    else:
                        # The dev wrapper, with the address file and binary path made local.
                        addr = os.path.join(work, "devbroker.addr")
                        with open(addr, "w") as f:
                            f.write(broker.bootstrap + "\n")
                        script = c["command"][2].replace("/run/hl/devbroker.addr", addr).replace(C.BIN_DIR + binary, path)
                        argv = ["/bin/sh", "-c", script]
                    log = open(os.path.join(work, "log"), "w")
                    p = subprocess.Popen(argv, env=full, stdout=log, stderr=subprocess.STDOUT)
                    try:
                        port = ports[0] if ports else None
                        okh = port and C.wait_for(lambda: p.poll() is None and C.http_get("http://127.0.0.1:%d/healthz" % port)[0] == 200, 30)
                        t.ok(bool(okh), cn + " starts with its manifest's environment and answers /healthz",
                             "exit %s\n%s" % (p.poll(), open(os.path.join(work, "log")).read()[-1500:]))
                        code = C.http_get("http://127.0.0.1:%d/readyz" % port)[0] if port else None
                        t.ok(code in (200, 503), cn + ": /readyz answers (%s)" % code)
                    finally:
                        grace = pod.get("terminationGracePeriodSeconds", 30)
                        p.send_signal(signal.SIGTERM)
                        try:
                            rc = p.wait(grace)
                        except subprocess.TimeoutExpired:
                            p.kill()
                            rc = "killed after %ss" % grace
                        log.close()
                    t.ok(rc == 0, cn + ": stops cleanly on SIGTERM within terminationGracePeriodSeconds (exit %s)" % rc,
                         open(os.path.join(work, "log")).read()[-1500:])
    finally:
        broker.stop()
        C.rmtree(tmp)


# ---------------------------------------------------------------- dockerfile
def case_dockerfile(t, build):
    import dockerfile_lint
    path = os.path.join(C.ROOT, "deploy/docker/Dockerfile")
    for name, ok, detail in dockerfile_lint.lint(open(path).read()):
        t.ok(ok, "Dockerfile lint: " + name, detail)
    # Negative controls: the lint refuses a bad Dockerfile.
    bad = "FROM debian:latest\nADD https://example.com/x.tgz /x\nRUN apt-get install -y curl\n"
    failed = [n for n, ok, _ in dockerfile_lint.lint(bad) if not ok]
    t.ok(len(failed) >= 5, "Dockerfile lint refuses a bad Dockerfile (%d findings)" % len(failed), failed)
    m = re.search(r"FHIR_SCHEMA_PACKAGE=(@[^@\s]+)@(\S+)", open(path).read())
    pins = json.load(open(os.path.join(C.ROOT, "tools/npm/package.json")))["dependencies"]
    t.ok(m and pins.get(m.group(1)) == m.group(2),
         "the image's FHIR schema package is the version tools/npm pins", m and m.groups())
    ign = os.path.join(C.ROOT, "deploy/docker/Dockerfile.dockerignore")
    t.ok(os.path.exists(ign) and "**" in open(ign).read().split(), "Dockerfile.dockerignore excludes by default")
    # The build context the ignore file lets through is enough to configure the build.
    pats = [ln.strip() for ln in open(ign) if ln.strip() and not ln.startswith("#")]
    files = subprocess.run(["git", "ls-files"], cwd=C.ROOT, capture_output=True, text=True).stdout.split()
    if not files or not shutil.which("meson"):
        t.skip("the build context configures with meson", "not a git checkout or no meson")
    else:
        tmp = C.tmpdir()
        try:
            kept = [f for f in files if dockerfile_lint.dockerignore_keeps(pats, f)]
            for f in kept:
                os.makedirs(os.path.join(tmp, "ctx", os.path.dirname(f)), exist_ok=True)
                if os.path.isfile(os.path.join(C.ROOT, f)):
                    shutil.copy(os.path.join(C.ROOT, f), os.path.join(tmp, "ctx", f))
            t.ok(not any(f.startswith(("tests/", "docs/", "deploy/", ".git")) and f != "docs/api/openapi.yaml"
                         for f in kept)
                 and "schemas/topics/topics.json" in kept,
                 "the ignore file keeps sources, topics.json and the OpenAPI document, drops tests, other docs, deploy (%d files)" % len(kept))
            r = subprocess.run(["meson", "setup", os.path.join(tmp, "b"), "--buildtype=release", "-Dtests=false",
                                "-Dfuzz=false"], cwd=os.path.join(tmp, "ctx"), capture_output=True, text=True)
            t.ok(r.returncode == 0, "the build context configures as the build stage runs it (meson setup)",
                 r.stdout[-1500:] + r.stderr[-1500:])
        finally:
            C.rmtree(tmp)
    built = all(os.access(os.path.join(build, b["build"]), os.X_OK) for b in C.table()["binaries"])
    if not built:
        t.skip("runtime stage installs exactly the packages scripts/deploy-libs lists", "not every binary is built")
        return
    r = subprocess.run([os.path.join(C.ROOT, "scripts/deploy-libs"), build, "--packages"], capture_output=True, text=True)
    t.ok(r.returncode == 0, "scripts/deploy-libs maps every library to a package", r.stderr)
    libs = set(r.stdout.split())
    # A sanitizer build (scripts/test --sanitize) also links the sanitizer runtimes;
    # they are not part of the release image.
    san = {p for p in libs if re.fullmatch(r"lib(asan|ubsan|tsan|lsan)\d+", p)}
    libs -= san
    if san:
        print("# sanitizer runtimes left out of the comparison: " + ", ".join(sorted(san)), flush=True)
    runtime = dockerfile_lint.runtime_packages(open(path).read())
    extra = set(dockerfile_lint.NON_LIBRARY_PACKAGES)
    t.ok(runtime == libs | extra, "runtime stage installs exactly the library packages (+ %s)" % ", ".join(sorted(extra)),
         "Dockerfile: %s\ndeploy-libs: %s" % (sorted(runtime), sorted(libs)))


# ---------------------------------------------------------------- alerts
def case_alerts(t, build):
    """promtool test rules: every alert fires on its synthetic history (alerts_test.yml)."""
    import yaml
    if not shutil.which("promtool"):
        t.bail_skip("promtool is not installed")
    tmp = C.tmpdir()
    try:
        src = yaml.safe_load(open(os.path.join(C.ROOT, "deploy/k8s/base/monitoring/prometheusrule.yaml")))
        rules = os.path.join(tmp, "rules.yml")
        yaml.safe_dump({"groups": src["spec"]["groups"]}, open(rules, "w"))
        r = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
        t.ok(r.returncode == 0, "promtool check rules", r.stdout + r.stderr)
        tests = yaml.safe_load(open(os.path.join(C.ROOT, "tests/deploy/alerts_test.yml")))
        tests["rule_files"] = [rules]
        alerts = {rr["alert"] for g in src["spec"]["groups"] for rr in g["rules"]}
        firing = {a["alertname"] for tc in tests["tests"] for a in tc.get("alert_rule_test", []) if a.get("exp_alerts")}
        t.ok(alerts == firing, "every alert has a promtool case where it fires", sorted(alerts ^ firing))
        for i, tc in enumerate(tests["tests"]):
            one = dict(tests, tests=[tc])
            path = os.path.join(tmp, "t%d.yml" % i)
            yaml.safe_dump(one, open(path, "w"))
            r = subprocess.run(["promtool", "test", "rules", path], capture_output=True, text=True)
            names = ", ".join(sorted({a["alertname"] for a in tc.get("alert_rule_test", [])}))
            t.ok(r.returncode == 0, "promtool test rules: %s" % names, r.stdout[-2000:] + r.stderr[-500:])
    finally:
        C.rmtree(tmp)


CASES = {"alerts": case_alerts, "build": case_build, "schema": case_schema, "policy": case_policy, "topics": case_topics,
         "agreement": case_agreement, "snowflake": case_snowflake, "start": case_start, "dockerfile": case_dockerfile}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        print("usage: test_deploy.py {%s} BUILD_DIR" % "|".join(CASES), file=sys.stderr)
        return 2
    t = C.Tap()
    try:
        CASES[sys.argv[1]](t, os.path.abspath(sys.argv[2]))
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        import traceback
        t.ok(False, "%s ran to the end" % sys.argv[1], traceback.format_exc())
        del e
    t.done()


if __name__ == "__main__":
    main()
