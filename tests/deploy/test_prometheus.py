#!/usr/bin/env python3
"""Real Prometheus scrapes a local run and answers every PromQL expression of
the dashboards and alert rules (meson suite 'deploy', TAP).

Usage: test_prometheus.py BUILD_DIR

The run, all on 127.0.0.1: hl-devbroker; hl-s3-notifier watching a landing
directory; hl-parser reading what it announces (one file with a bad line, so
the DLQ counters move), hl-validator and hl-loader (SQLite) behind it; hl-passthrough copying kcat traffic between two extra
topics; hl-api-gateway over the loader's warehouse answering a few requests
(searches, a missing resource, a request without a token, and a presigned
upload URL its directory landing cannot give: 200, 404, 401 and 501). Prometheus (/usr/bin/prometheus) scrapes every admin server each
second with the labels a PodMonitor gives in a cluster (namespace, pod,
worker), and loads the PrometheusRule's groups as its rule file.

Checks: promtool check rules and check metrics; for every dashboard panel
target and template variable, the expression (variables set to match all)
returns data; for every alert, the expression evaluates and every series
selector in it returns data (the alert conditions themselves are false in a
healthy run). Skips (exit 77) without prometheus, promtool, kcat or the
binaries.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

PROMETHEUS = os.environ.get("HL_PROMETHEUS", "/usr/bin/prometheus")
GRAFANA_VARS = {"$namespace": ".+", "$worker": ".+", "$topic": ".+", "$route": ".+", "$__rate_interval": "30s",
                "${datasource}": "", "$__interval": "5s", "$__range": "1m"}


def rules_doc():
    with open(os.path.join(C.ROOT, "deploy/k8s/base/monitoring/prometheusrule.yaml")) as f:
        return yaml.safe_load(f)


def dashboards():
    d = os.path.join(C.ROOT, "deploy/k8s/base/monitoring/dashboards")
    return [(f, json.load(open(os.path.join(d, f)))) for f in sorted(os.listdir(d)) if f.endswith(".json")]


def grafana(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


def label_values_query(q):
    """label_values(selector, label) -> count by (label) (selector)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q, re.S)
    return "count by (%s) (%s)" % (m.group(2), m.group(1)) if m else q


def selectors(expr):
    """Every vector selector metric{matchers} in an expression, offsets dropped."""
    out = []
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\[[^\]]*\])?", expr):
        name = m.group(1)
        if name in ("by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                    "offset", "bool") or m.group(0).endswith("(") or name.startswith("hl_") is False and name != "up":
            continue
        nxt = expr[m.end():m.end() + 1]
        if nxt == "(":
            continue
        out.append(name + (m.group(2) or ""))
    return sorted(set(out))


class Prom:
    def __init__(self, tmp, targets, rules_file):
        self.port = C.free_port()
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
               "rule_files": [rules_file],
               "scrape_configs": [{"job_name": "healthlake", "static_configs": [
                   {"targets": [addr], "labels": {"namespace": "healthlake", "worker": name, "pod": name + "-0"}}
                   for name, addr in targets]}]}
        path = os.path.join(tmp, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        self.log = open(os.path.join(tmp, "prometheus.log"), "w")
        self.proc = subprocess.Popen([PROMETHEUS, "--config.file=" + path,
                                      "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = "http://127.0.0.1:%d" % self.port

    def query(self, q):
        code, body = C.http_get(self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=10)
        try:
            return code, json.loads(body)
        except ValueError:
            return code, {"status": "error", "error": body[:300]}

    def has_data(self, q):
        code, r = self.query(q)
        return code == 200 and r.get("status") == "success" and bool(r["data"]["result"])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


API_SECRET = "deploy-test-hs256-secret-of-32-bytes-or-more"


def api_request(base, method, path, token):
    """One API request; the status code (None when the connection failed)."""
    req = urllib.request.Request(base + path, method=method, data=b"{}" if method == "POST" else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if method == "POST":
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except OSError:
        return None


def start(argv, env, log_path):
    log = open(log_path, "w")
    full = {k: v for k, v in os.environ.items() if not k.startswith("HL_")}
    full.update(env)
    return subprocess.Popen(argv, env=full, stdout=log, stderr=subprocess.STDOUT), log


def main():
    t = C.Tap()
    build = os.path.abspath(sys.argv[1])
    for tool in (PROMETHEUS, shutil.which("promtool") or "promtool", shutil.which("kcat") or "kcat"):
        if not (os.access(tool, os.X_OK)):
            t.bail_skip("%s is not installed" % tool)
    bins = {n: C.binary_path(build, n) for n in ("hl-devbroker", "hl-s3-notifier", "hl-parser", "hl-passthrough",
                                                "hl-validator", "hl-loader", "hl-api-gateway")}
    token_tool = os.path.join(build, "tools/api-token/hl-api-token")
    if not os.access(token_tool, os.X_OK):
        t.bail_skip("hl-api-token is not built")
    schema = os.path.join(C.ROOT, C.IMAGE_FILES["/usr/share/healthlake/fhir.schema.json"])
    if not os.path.exists(schema):
        t.bail_skip("the FHIR JSON Schema is not installed (scripts/bootstrap)")
    if not all(bins.values()):
        t.bail_skip("not built: " + ", ".join(n for n, p in bins.items() if not p))

    tmp = C.tmpdir()
    procs = []
    prom = None
    try:
        # promtool on the rule file.
        rules_file = os.path.join(tmp, "rules.yml")
        with open(rules_file, "w") as f:
            yaml.safe_dump({"groups": rules_doc()["spec"]["groups"]}, f)
        r = subprocess.run(["promtool", "check", "rules", rules_file], capture_output=True, text=True)
        t.ok(r.returncode == 0, "promtool check rules accepts the PrometheusRule groups", r.stdout + r.stderr)

        broker = C.DevBroker(build, tmp, extra="hl.test.in:4,hl.test.out:4")
        procs.append(("hl-devbroker", broker.proc, broker.log))
        landing = os.path.join(tmp, "landing")
        os.makedirs(os.path.join(landing, "org=acme"))
        admin = {}
        common = {"HL_KAFKA_BROKERS": broker.bootstrap, "HL_LOG_LEVEL": "warn"}
        for name, env in (
                ("hl-parser", {"HL_PARSER_LANDING_DIR": landing, "HL_KAFKA_STATS_INTERVAL": "1s"}),
                ("hl-passthrough", {"HL_PT_INPUT_TOPIC": "hl.test.in", "HL_PT_OUTPUT_TOPIC": "hl.test.out",
                                    "HL_KAFKA_STATS_INTERVAL": "1s"}),
                ("hl-validator", {"HL_KAFKA_STATS_INTERVAL": "1s", "HL_VALIDATOR_SCHEMA": schema,
                                  "HL_VALIDATOR_PROFILE": os.path.join(C.ROOT, "schemas/fhir/profile.json")}),
                ("hl-loader", {"HL_KAFKA_STATS_INTERVAL": "1s",
                               "HL_WAREHOUSE_PATH": os.path.join(tmp, "warehouse.db")}),
                ("hl-s3-notifier", {"HL_NOTIFIER_DIR": landing, "HL_NOTIFIER_STABLE_FOR": "200ms",
                                    "HL_NOTIFIER_STATE": os.path.join(tmp, "notifier.db")}),
            ("hl-api-gateway", {"HL_WAREHOUSE_PATH": os.path.join(tmp, "warehouse.db"), "HL_API_LANDING": landing,
                                "HL_API_ALLOW_HS256": "true", "HL_API_HS256_SECRET": API_SECRET,
                                "HL_API_AUDIT": "", "HL_API_RATE_LIMIT": "20", "HL_API_RATE_BURST": "20"})):
            admin[name] = "127.0.0.1:%d" % C.free_port()
            e = dict(common, **env)
            e[C.addr_var(name)] = admin[name]
            p, log = start([bins[name]], e, os.path.join(tmp, name + ".log"))
            procs.append((name, p, log))
        admin["hl-devbroker"] = broker.admin

        # /readyz polled from the start: not ready (503) until the group assigned partitions.
        for name in ("hl-parser", "hl-passthrough", "hl-validator", "hl-loader"):
            ready = C.wait_for(lambda n=name: C.http_get("http://%s/readyz" % admin[n])[0] == 200, 60, 0.05)
            t.ok(bool(ready), "%s becomes ready against hl-devbroker" % name)

        # The API: ready once the loader created the warehouse.
        api = "http://" + admin["hl-api-gateway"]
        ready = C.wait_for(lambda: C.http_get(api + "/readyz")[0] == 200, 60, 0.1)
        t.ok(bool(ready), "hl-api-gateway becomes ready over the loader's warehouse")

        # Traffic: hl-synth patients (valid FHIR) plus one bad line and one
        # profile-invalid resource, a filtered file, and kcat messages.
        synth = C.binary_path(build, "hl-synth") or os.path.join(build, "synthetic/hl-synth")
        r = subprocess.run([synth, "--patients", "2", "--out", os.path.join(tmp, "synth"), "--progress", "never"],
                           capture_output=True, text=True, timeout=120)
        t.ok(r.returncode == 0, "hl-synth generated 2 patients", r.stderr[-500:])
        with open(os.path.join(tmp, "synth", "org=org-1", "Patient.ndjson"), "a") as f:
            f.write("{not json\n")
            f.write(json.dumps({"resourceType": "Patient", "id": "bad", "gender": 7}) + "\n")
        for fn in sorted(os.listdir(os.path.join(tmp, "synth", "org=org-1"))):
            os.rename(os.path.join(tmp, "synth", "org=org-1", fn), os.path.join(landing, "org=acme", fn))
        with open(os.path.join(landing, "org=acme", "notes.txt"), "w") as f:
            f.write("not FHIR\n")
        payload = "".join("k%d:{\"n\":%d}\n" % (i, i) for i in range(200))
        r = subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", "hl.test.in", "-K:"], input=payload,
                           text=True, capture_output=True, timeout=60)
        t.ok(r.returncode == 0, "kcat produced 200 messages to hl.test.in", r.stderr)

        prom = Prom(tmp, sorted(admin.items()), rules_file)
        up = C.wait_for(lambda: prom.has_data('count(up{job="healthlake"} == 1) == %d' % len(admin)), 60, 0.5)
        t.ok(bool(up), "Prometheus scrapes all %d admin servers" % len(admin), open(os.path.join(tmp, "prometheus.log")).read()[-1500:])
        moved = C.wait_for(lambda: prom.has_data('sum(hl_kafka_messages_produced_total{worker="hl-passthrough"}) >= 200')
                           and prom.has_data('sum(hl_parser_resources_total) >= 100')
                           and prom.has_data('sum(hl_loader_rows_total) >= 1'), 90, 0.5)
        t.ok(bool(moved), "the pipeline moved the traffic (passthrough copied 200; parser emitted 100+ resources; "
             "the loader committed rows)")

        # API traffic: searches and reads (200), a missing resource (404), no token (401),
        # a presigned upload URL the directory landing cannot give (501, a real 5xx).
        r = subprocess.run([token_tool, "mint", "--hs256-secret", API_SECRET, "--tenant", "acme",
                            "--scope", "system/*.read system/hl.ingest"], capture_output=True, text=True, timeout=30)
        token = r.stdout.strip()
        t.ok(r.returncode == 0 and token.count(".") == 2, "hl-api-token minted an HS256 token", r.stderr)
        codes = {}
        for _ in range(3):
            for method, path, auth in (("GET", "/v1/fhir/Patient?_count=5", True),
                                       ("GET", "/v1/fhir/Observation?_count=5", True),
                                       ("GET", "/v1/fhir/Patient/no-such-patient", True),
                                       ("GET", "/v1/fhir/Patient", False),
                                       ("POST", "/v1/ingestion/upload-url", True)):
                code = api_request(api, method, path, token if auth else None)
                codes[(method, path, auth)] = code
        want = {("GET", "/v1/fhir/Patient?_count=5", True): 200, ("GET", "/v1/fhir/Observation?_count=5", True): 200,
                ("GET", "/v1/fhir/Patient/no-such-patient", True): 404, ("GET", "/v1/fhir/Patient", False): 401,
                ("POST", "/v1/ingestion/upload-url", True): 501}
        t.ok(codes == want, "hl-api-gateway answered 200, 404, 401 and 501 as expected", codes)
        # Another caller goes over its rate limit (20/s, burst 20): some 429s.
        r = subprocess.run([token_tool, "mint", "--hs256-secret", API_SECRET, "--tenant", "acme", "--sub", "flood"],
                           capture_output=True, text=True, timeout=30)
        flood = [api_request(api, "GET", "/v1/fhir/Patient?_count=1", r.stdout.strip()) for _ in range(60)]
        t.ok(flood.count(429) >= 1, "a caller over its rate limit gets 429 (%d of 60)" % flood.count(429))

        # promtool check metrics on each binary's exposition.
        for name, addr in sorted(admin.items()):
            code, body = C.http_get("http://%s/metrics" % addr)
            r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
            t.ok(code == 200 and r.returncode == 0, "promtool check metrics: %s /metrics" % name, r.stdout + r.stderr)

        # Every dashboard expression and template variable returns data.
        exprs = []
        for fname, d in dashboards():
            for v in d.get("templating", {}).get("list", []):
                if v.get("type") == "query":
                    q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                    exprs.append(("%s variable %s" % (fname, v["name"]), label_values_query(grafana(q))))
            for p in d["panels"]:
                for tg in p.get("targets", []):
                    exprs.append(("%s panel '%s' %s" % (fname, p["title"], tg["refId"]), grafana(tg["expr"])))
        for name, q in exprs:
            ok = C.wait_for(lambda q=q: prom.has_data(q), 45, 1.0)
            t.ok(bool(ok), name + " returns data", q + "\n" + json.dumps(prom.query(q)[1])[:500])

        # Negative control: a metric no binary exports has no data.
        t.ok(not prom.has_data("count(hl_no_such_metric_total)") and not prom.has_data(
            grafana('sum by (worker) (rate(hl_worker_messages_in_total{worker=~"$worker", code="x"}[1m]))')),
            "negative control: an unexported metric or label returns no data")

        # Every alert: evaluates, and each of its series selectors has data.
        for g in rules_doc()["spec"]["groups"]:
            for rule in g["rules"]:
                expr = rule["expr"]
                code, res = prom.query(expr)
                t.ok(code == 200 and res.get("status") == "success", "alert %s evaluates" % rule["alert"], res)
                for sel in selectors(expr):
                    # The metric exists, and so does every label its matchers name (a
                    # matcher such as result!="ok" selects nothing in a healthy run).
                    name = sel.split("{")[0]
                    labels = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)', sel[len(name):])
                    qs = ["count(%s)" % name] + ['count(%s{%s!=""})' % (name, lb) for lb in labels]
                    ok = C.wait_for(lambda qs=qs: all(prom.has_data(q) for q in qs), 45, 1.0)
                    t.ok(bool(ok), "alert %s: %s exists with labels %s" % (rule["alert"], name, labels or "-"), qs)
                # The rule is loaded and evaluated by Prometheus without error.
                code, res = C.http_get(prom.base + "/api/v1/rules")
                health = [rr.get("health") for gg in json.loads(res)["data"]["groups"] for rr in gg["rules"]
                          if rr.get("name") == rule["alert"]] if code == 200 else []
                ok = C.wait_for(lambda a=rule["alert"]: [rr.get("health") for gg in json.loads(C.http_get(prom.base + "/api/v1/rules")[1])["data"]["groups"]
                                                        for rr in gg["rules"] if rr.get("name") == a] == ["ok"], 20, 0.5)
                t.ok(bool(ok), "alert %s: Prometheus evaluates it with health ok" % rule["alert"], health)
    finally:
        if prom:
            prom.stop()
        for name, p, log in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if not log.closed:
                log.close()
        if os.environ.get("HL_TEST_KEEP"):
            print("# kept " + tmp)
        else:
            C.rmtree(tmp)
    t.done()


if __name__ == "__main__":
    main()
