#!/bin/sh
# A target outside Python for `harness run --target "exec:sh examples/exec_sqlite.sh"`:
# a queue in one SQLite database, driven through the sqlite3 command-line tool.
#
# It speaks the JSON-lines protocol of docs/exec-targets.md (stated in
# harness/run/_exectarget.py): one request per line on stdin, one reply per line on
# stdout. The queue directory is the last argument (also $QUEUE_DIR). Payloads stay in
# base64 end to end (the table stores the text the harness sent and hands it back), so no
# binary data ever passes through the shell. Each call is one sqlite3 statement, atomic on
# its own: a claim is a single UPDATE ... RETURNING, so two processes never get the same
# entry. WAL mode with synchronous=FULL: a call that returned is durable.
#
# POSIX sh (dash is enough) plus sqlite3 >= 3.35 (RETURNING, json_group_object).
set -u

dir=${QUEUE_DIR:-}
for dir; do :; done  # the last argument, when there is one
[ -n "$dir" ] || { echo "the queue directory is the last argument or QUEUE_DIR" >&2; exit 2; }
db="$dir/queue.sqlite3"

SCHEMA="CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL, state TEXT NOT NULL, worker TEXT);"

sql() {  # run SQL on the queue; stdout is the result, stderr kept in $err
    # Every call makes sure of the directory and the table first: a queue whose directory
    # was removed, or that could not be created on a full disk, comes back once it can,
    # and an error is a reply, never an exit.
    mkdir -p "$dir" 2>/dev/null
    err=$(mktemp) || { msg="mktemp failed"; return 1; }
    out=$(printf '%s\n' ".output /dev/null" "PRAGMA journal_mode=WAL;" "$SCHEMA" ".output" \
        "$1" | sqlite3 -batch -bail -cmd '.timeout 10000' \
        -cmd 'PRAGMA synchronous=FULL;' "$db" 2>"$err")
    status=$?
    msg=$(head -c 300 "$err" | tr '\n"\\' '   ')
    rm -f "$err"
    return $status
}

reply_ok() { printf '{"ok": %s}\n' "$1"; }
reply_error() { printf '{"error": "%s"}\n' "$1" | tr -d '\000-\011\013-\037'; }

field() {  # the string value of "$1" in the request line $line (harness-made: no escapes)
    printf '%s\n' "$line" | sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p"
}


while IFS= read -r line; do
    op=$(field op)
    case $op in
    enqueue)
        payload=$(field payload)
        case $payload in *[!A-Za-z0-9+/=]*) reply_error "payload is not base64"; continue ;; esac
        if sql "INSERT INTO entries (payload, state) VALUES ('$payload', 'PENDING')
                RETURNING id;"; then reply_ok "\"$out\""; else reply_error "enqueue: $msg"; fi
        ;;
    claim)
        worker=$(field worker | tr -cd 'A-Za-z0-9_-')
        if sql "UPDATE entries SET state = 'PROCESSING', worker = '$worker'
                WHERE id = (SELECT id FROM entries WHERE state = 'PENDING' ORDER BY id LIMIT 1)
                RETURNING json_array(CAST(id AS TEXT), payload);"; then
            reply_ok "${out:-null}"
        else
            reply_error "claim: $msg"
        fi
        ;;
    ack)
        id=$(field id)
        case $id in ''|*[!0-9]*) reply_error "ack: not an id of this queue: $id"; continue ;; esac
        if ! sql "DELETE FROM entries WHERE id = $id AND state = 'PROCESSING' RETURNING id;"
        then reply_error "ack: $msg"
        elif [ -z "$out" ]; then reply_error "ack: entry $id is not claimed"
        else reply_ok null; fi
        ;;
    recover)
        if sql "UPDATE entries SET state = 'PENDING', worker = NULL
                WHERE state = 'PROCESSING';"; then reply_ok null; else reply_error "recover: $msg"; fi
        ;;
    states)
        if sql "SELECT json_group_object(CAST(id AS TEXT), state) FROM entries;"
        then reply_ok "$out"; else reply_error "states: $msg"; fi
        ;;
    close)
        reply_ok null
        exit 0
        ;;
    *)
        reply_error "unknown op: $op"
        ;;
    esac
done
