#!/usr/bin/env python3
"""hl-s3-notifier's s3-events source over real HTTP, and its admin endpoints.

Starts the notifier with POST /events/s3 enabled (no landing directory),
waits for /readyz, posts an AWS notification, an SNS envelope, an
EventBridge event and bad bodies, then reads hl.landing.objects with kcat:
each created object exactly once (a repeated notification is not announced
again), with the decoded key, the org from the key and the default org
otherwise. /metrics must pass promtool when it is installed.

usage: test_notifier_s3events.py HL_S3_NOTIFIER MOCKBROKER
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TOPIC = "hl.landing.objects"


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def s3_record(bucket, key, etag, size=10, name="ObjectCreated:Put"):
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2026-11-25T16:00:00.000Z",
            "eventName": name, "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
                                      "object": {"key": key, "size": size, "eTag": etag}}}


def main():
    notifier_bin, broker_bin = sys.argv[1], sys.argv[2]
    if not shutil.which("kcat"):
        print("SKIP: kcat not installed")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="hl-notifier-s3ev-")
    broker = subprocess.Popen([broker_bin, f"{TOPIC}:16"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    brokers = broker.stdout.readline().strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HL_NOTIFIER_S3_EVENTS="true", HL_ADMIN_ADDR=f"127.0.0.1:{port}",
               HL_NOTIFIER_STATE=os.path.join(work, "state.db"), HL_NOTIFIER_DEFAULT_ORG="dflt",
               HL_KAFKA_BROKERS=brokers, HL_KAFKA_PROPS="log_level=3", HL_LOG_LEVEL="warn")
    log = open(os.path.join(work, "notifier.log"), "w")
    proc = subprocess.Popen([notifier_bin], env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 30
        while True:
            try:
                code, body = request(base + "/readyz")
                if code == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                fail("the notifier did not become ready")
            time.sleep(0.1)

        aws = {"Records": [s3_record("lake", "org%3Dacme/in/my+file%281%29.ndjson", "e1", 11),
                           s3_record("lake", "gone.ndjson", "e9", name="ObjectRemoved:Delete")]}
        code, body = request(base + "/events/s3", json.dumps(aws).encode())
        if code != 202 or json.loads(body) != {"accepted": 1, "ignored": 1}:
            fail(f"AWS notification: {code} {body}")
        sns = {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
               "Message": json.dumps({"Records": [s3_record("lake", "plain/b.ndjson.gz", "\"e2\"", 22)]})}
        code, body = request(base + "/events/s3", json.dumps(sns).encode())
        if code != 202:
            fail(f"SNS envelope: {code} {body}")
        eb = {"version": "0", "detail-type": "Object Created", "source": "aws.s3",
              "time": "2026-11-25T16:00:01Z",
              "detail": {"bucket": {"name": "lake"},
                         "object": {"key": "org=beta/c d.json", "size": 33, "etag": "e3"}}}
        code, body = request(base + "/events/s3", json.dumps(eb).encode())
        if code != 202:
            fail(f"EventBridge: {code} {body}")
        # The same notification again: accepted, never announced twice.
        code, body = request(base + "/events/s3", json.dumps(aws).encode())
        if code != 202:
            fail(f"repeated notification: {code} {body}")
        for bad in [b"not json", b"{\"Type\":\"SubscriptionConfirmation\"}", b"[]"]:
            code, body = request(base + "/events/s3", bad)
            if code != 400:
                fail(f"bad body {bad!r}: {code} {body}")
        code, body = request(base + "/events/s3", b"{" + b" " * (1024 * 1024) + b"}")
        if code != 413:
            fail(f"large body: {code}")

        want = {"lake/org=acme/in/my file(1).ndjson": ("acme", 11),
                "lake/plain/b.ndjson.gz": ("dflt", 22),
                "lake/org=beta/c d.json": ("beta", 33)}
        deadline = time.time() + 30
        while True:
            out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", TOPIC, "-o", "beginning", "-e",
                                  "-q", "-X", "log_level=0", "-f", "%k\t%s\n"],
                                 capture_output=True, text=True, timeout=60).stdout
            msgs = [line.split("\t", 1) for line in out.splitlines()]
            if len(msgs) >= len(want) or time.time() > deadline:
                break
            time.sleep(0.5)
        time.sleep(1)
        code, metrics = request(base + "/metrics")
        if code != 200 or "hl_notifier_objects_announced_total 3" not in metrics:
            fail(f"/metrics: {code}\n{metrics}")
        if 'hl_notifier_objects_skipped_total{reason="known"} 1' not in metrics:
            fail("the repeated notification was not counted as known")
        if shutil.which("promtool"):
            chk = subprocess.run(["promtool", "check", "metrics"], input=metrics,
                                 capture_output=True, text=True)
            if chk.returncode != 0:
                fail(f"promtool: {chk.stdout}{chk.stderr}")
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=30) != 0:
            fail(f"SIGTERM: exit status {proc.returncode}")
        out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", TOPIC, "-o", "beginning", "-e",
                              "-q", "-X", "log_level=0", "-f", "%k\t%s\n"],
                             capture_output=True, text=True, timeout=60).stdout
        msgs = [line.split("\t", 1) for line in out.splitlines()]
        got = {}
        for key, value in msgs:
            if key in got:
                fail(f"{key} announced twice")
            got[key] = json.loads(value)
        if set(got) != set(want):
            fail(f"announced {sorted(got)}, expected {sorted(want)}")
        for key, (org, size) in want.items():
            ev = got[key]
            if ev["org"] != org or ev["size"] != size or not ev["uri"].startswith("s3://lake/"):
                fail(f"{key}: {ev}")
        if got["lake/plain/b.ndjson.gz"]["etag"] != "e2":
            fail("ETag quotes were not removed")
        print(f"ok: {len(got)} objects from AWS, SNS and EventBridge notifications, each once")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.stdin.close()
        broker.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
