#!/usr/bin/env python3
"""hl-s3-notifier across kill -9: every landing file announced exactly once.

1,000 files land in a burst: half written under a temporary name and
renamed, half written slowly in pieces (each piece well within
HL_NOTIFIER_STABLE_FOR of the previous one). Meanwhile the notifier is
killed with SIGKILL at random moments and restarted; then killed again
exactly while its state file holds pending announcements (produced or
about to be, not yet acknowledged), so that recovery has work to do. At the end
hl.landing.objects must hold exactly one message per file, with the final
size, produced after the file was complete; a last restart announces
nothing new. Broker: librdkafka's mock cluster (tests/integration/mockbroker.c).

usage: test_notifier_restarts.py HL_S3_NOTIFIER MOCKBROKER
"""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

TOPIC = "hl.landing.objects"
N_ATOMIC = 500
N_SLOW = 500
PIECES = 4
PIECE_GAP = 0.25       # seconds between pieces of a slow file
STABLE_MS = 2000       # HL_NOTIFIER_STABLE_FOR
KILLS = 4              # at random moments during the burst
TARGETED_KILLS = 3     # while announcements are pending
DEADLINE = 100         # seconds for everything to be announced


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def main():
    notifier_bin, broker_bin = sys.argv[1], sys.argv[2]
    if not shutil.which("kcat"):
        print("SKIP: kcat not installed")
        sys.exit(77)
    rng = random.Random(int(os.environ.get("HL_TEST_SEED", "0")) or None)
    work = tempfile.mkdtemp(prefix="hl-notifier-it-")
    land = os.path.join(work, "landing")
    os.makedirs(land)
    broker = subprocess.Popen([broker_bin, f"{TOPIC}:16"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    brokers = broker.stdout.readline().strip()
    if not brokers:
        fail("the mock broker did not start")
    env = dict(os.environ,
               HL_NOTIFIER_DIR=land,
               HL_NOTIFIER_BUCKET="landing",
               HL_NOTIFIER_STATE=os.path.join(work, "state.db"),
               HL_NOTIFIER_STABLE_FOR=f"{STABLE_MS}ms",
               HL_NOTIFIER_RESCAN_INTERVAL="3s",
               HL_NOTIFIER_SUFFIXES=".ndjson",
               HL_NOTIFIER_MAX_PENDING="50",
               HL_NOTIFIER_BATCH="20",
               HL_KAFKA_BROKERS=brokers,
               HL_KAFKA_PROPS="log_level=3",
               HL_ADMIN_ADDR="",
               HL_LOG_LEVEL="info")
    logf = open(os.path.join(work, "notifier.log"), "w")
    proc = [None]
    starts = [0]

    def start():
        proc[0] = subprocess.Popen([notifier_bin], env=env, stdout=logf, stderr=logf)
        starts[0] += 1

    def consume():
        out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", TOPIC, "-o", "beginning", "-e",
                              "-q", "-X", "log_level=0", "-f", "%T\t%k\t%s\n"],
                             capture_output=True, text=True, timeout=60)
        msgs = []
        for line in out.stdout.splitlines():
            ts, key, value = line.split("\t", 2)
            msgs.append((int(ts), key, json.loads(value)))
        return msgs

    expected = {}   # key -> (size, completed_at_ms or None)
    try:
        start()
        kill_at = sorted(rng.uniform(0.2, 5.0) for _ in range(KILLS))
        t0 = time.time()

        def killer():
            # Random kills, on their own thread so that the writers keep their pace.
            for at in kill_at:
                time.sleep(max(0, at - (time.time() - t0)))
                proc[0].send_signal(signal.SIGKILL)
                proc[0].wait()
                time.sleep(rng.uniform(0, 0.3))
                start()

        kill_thread = threading.Thread(target=killer)
        kill_thread.start()
        last_piece = {}
        max_gap = 0.0

        slow = []
        for i in range(N_SLOW):
            d = os.path.join(land, f"org=org-{i % 4}", "slow", f"job=s{i % 7}")
            os.makedirs(d, exist_ok=True)
            slow.append(os.path.join(d, f"s{i:04d}.ndjson"))
        atomic_done = 0
        per_round = N_ATOMIC // PIECES + 1
        for piece in range(PIECES):
            round_start = time.time()
            for path in slow:
                now = time.time()
                if path in last_piece:
                    max_gap = max(max_gap, now - last_piece[path])
                last_piece[path] = now
                with open(path, "a") as f:
                    f.write(json.dumps({"resourceType": "Observation", "id": f"{path[-10:]}-{piece}"}) + "\n")
                if piece == PIECES - 1:
                    key = os.path.relpath(path, land)
                    expected[key] = (os.path.getsize(path), int(time.time() * 1000))
            # A burst of atomic files between the pieces, some in directories created now.
            for i in range(atomic_done, min(N_ATOMIC, atomic_done + per_round)):
                d = os.path.join(land, f"org=org-{i % 4}", f"batch{i // 50}")
                os.makedirs(d, exist_ok=True)
                final = os.path.join(d, f"a{i:04d}.ndjson")
                tmp = final + ".tmp"
                body = "".join(json.dumps({"resourceType": "Patient", "id": f"p{i}-{k}"}) + "\n"
                               for k in range(1 + i % 5))
                with open(tmp, "w") as f:
                    f.write(body)
                os.rename(tmp, final)
                expected[os.path.relpath(final, land)] = (len(body), None)
            atomic_done = min(N_ATOMIC, atomic_done + per_round)
            time.sleep(max(0, PIECE_GAP - (time.time() - round_start)))
        kill_thread.join()
        # The premise of the early-announcement check: no file paused as long as the window.
        if max_gap > STABLE_MS / 1000 * 0.8:
            fail(f"the machine is too slow for this test: a file paused {max_gap:.2f}s between pieces")
        if len(expected) != N_ATOMIC + N_SLOW:
            fail(f"wrote {len(expected)} files")

        # Kills aimed at the window between recording and acknowledging.
        targeted = 0
        db = sqlite3.connect(f"file:{env['HL_NOTIFIER_STATE']}?mode=ro", uri=True, timeout=5)
        aim_until = time.time() + 30
        while targeted < TARGETED_KILLS and time.time() < aim_until:
            try:
                pending = db.execute("SELECT count(*) FROM objects WHERE status=0").fetchone()[0]
                total = db.execute("SELECT count(*) FROM objects").fetchone()[0]
            except sqlite3.OperationalError:
                pending, total = 0, 0
            if total >= len(expected) and pending == 0:
                break
            if pending > 0:
                # Sometimes at once (messages not sent yet), sometimes a little later
                # (messages on the topic, acknowledgements not recorded yet).
                time.sleep(rng.choice([0, 0.004, 0.008, 0.015]))
                proc[0].send_signal(signal.SIGKILL)
                proc[0].wait()
                targeted += 1
                start()
            time.sleep(0.002)
        db.close()

        # Wait until every file is announced.
        while True:
            msgs = consume()
            keys = {k for _, k, _ in msgs}
            if len(keys) >= len(expected):
                break
            if time.time() - t0 > DEADLINE:
                fail(f"only {len(keys)} of {len(expected)} objects announced after {DEADLINE}s")
            if proc[0].poll() is not None:
                fail(f"the notifier exited with {proc[0].returncode}")
            time.sleep(1)
        burst_s = time.time() - t0

        # A clean stop, then one more restart that must announce nothing new.
        time.sleep(STABLE_MS / 1000 + 0.5)
        proc[0].send_signal(signal.SIGTERM)
        if proc[0].wait(timeout=30) != 0:
            fail(f"SIGTERM: exit status {proc[0].returncode}")
        start()
        time.sleep(STABLE_MS / 1000 * 2 + 1.5)
        proc[0].send_signal(signal.SIGTERM)
        if proc[0].wait(timeout=30) != 0:
            fail(f"SIGTERM after restart: exit status {proc[0].returncode}")

        msgs = consume()
        seen = {}
        for ts, key, ev in msgs:
            if not key.startswith("landing/"):
                fail(f"unexpected message key {key}")
            rel = key[len("landing/"):]
            if rel in seen:
                fail(f"{rel} announced twice: {seen[rel][2]} and {ev}")
            seen[rel] = (ts, key, ev)
        missing = set(expected) - set(seen)
        extra = set(seen) - set(expected)
        if missing or extra:
            fail(f"missing {sorted(missing)[:5]} ({len(missing)}), unexpected {sorted(extra)[:5]}")
        early = 0
        for rel, (size, done_ms) in expected.items():
            ts, _, ev = seen[rel]
            if ev["size"] != size:
                fail(f"{rel}: announced with size {ev['size']}, final size {size}")
            if done_ms is not None and ts < done_ms:
                early += 1
            want_org = rel.split("/")[0][len("org="):]
            if ev["org"] != want_org:
                fail(f"{rel}: org {ev['org']}, expected {want_org}")
            if "/job=" in "/" + rel and not ev["job"].startswith("s"):
                fail(f"{rel}: job {ev['job']} not taken from the path")
            if ev["uri"] != "file://" + os.path.join(land, rel):
                fail(f"{rel}: uri {ev['uri']}")
        if early:
            fail(f"{early} slowly written files announced before their last piece")
        found = again = 0
        with open(os.path.join(work, "notifier.log")) as f:
            for line in f:
                rec = json.loads(line)
                if rec.get("msg") == "notifier recovered pending announcements":
                    found += int(rec["found_on_topic"])
                    again += int(rec["produced_again"])
        if targeted and found + again == 0:
            fail("killed with pending rows, yet no recovery was logged")
        print(f"ok: {len(expected)} objects announced exactly once across {starts[0]} starts "
              f"({KILLS} random and {targeted} targeted SIGKILLs; recovery found {found} pending "
              f"rows on the topic and produced {again} again); all announced {burst_s:.1f}s "
              f"after the burst began")
    finally:
        if proc[0] and proc[0].poll() is None:
            proc[0].kill()
            proc[0].wait()
        broker.stdin.close()
        broker.wait(timeout=30)
        logf.close()
        if os.environ.get("HL_TEST_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
