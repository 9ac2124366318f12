"""Turns the raw results of bench/run into one table, the ratios that matter, and a JSON file.

    report.py pgbench NAME CLIENTS PGBENCH_OUTPUT LOG...   one JSON line for a pgbench run
    report.py counters SERVER_PID                          one JSON snapshot of the server's talk to PostgreSQL
    report.py report RESULTS.ndjson RESULTS_DIR            the table, the ratios, and RESULTS_DIR/<time>.json

The database is the one DATABASE_URL names.
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import urllib.parse


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def pgbench(name, clients, output_path, logs):
    output = open(output_path).read()
    tps = float(re.search(r"tps = ([0-9.]+)", output).group(1))
    latencies = []
    for log in logs:
        with open(log) as lines:
            # client_id transaction_no latency_us script_no epoch epoch_us
            latencies.extend(int(line.split()[2]) for line in lines if line.strip())
    latencies.sort()
    print(json.dumps({
        "scenario": name,
        "tool": "pgbench",
        "connections": int(clients),
        "requests_per_second": tps,
        "p50_ms": percentile(latencies, 50) / 1000,
        "p99_ms": percentile(latencies, 99) / 1000,
        "transactions": len(latencies),
    }))


def psql(query, url=None):
    return subprocess.run(["psql", url or os.environ["DATABASE_URL"], "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", query],
                          capture_output=True, text=True, check=True).stdout.strip()


# The database's own counts: transactions (pg_stat_database) and, per table of the service, scans and written rows
# (pg_stat_user_tables). Backends publish these when idle, at most once a second and otherwise 10 s later
# (PostgreSQL 15), so bench/run waits that long after a run before reading them.
DATABASE_COUNTS = """
SELECT json_build_object(
  'transactions', (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()),
  'tables', (SELECT json_object_agg(relname, json_build_object(
                 'seq_scan', seq_scan, 'idx_scan', coalesce(idx_scan, 0), 'n_tup_ins', n_tup_ins,
                 'n_tup_upd', n_tup_upd, 'n_tup_del', n_tup_del))
               FROM pg_stat_user_tables WHERE schemaname = 'public'))
"""

# Statements executed, from pg_stat_statements when the server preloads it and bench/run installed it (in shared
# memory, current at once): sum of calls, and calls per normalised statement; the bench's own queries left out.
STATEMENT_COUNTS = """
SELECT json_build_object('total', coalesce(sum(calls), 0),
                         'by_statement', coalesce(json_object_agg(query, calls), '{}'))
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND query !~ '(pg_stat_|pg_extension|^CHECKPOINT)'
"""


def segments(ports, pid=None):
    """Per established TCP connection to one of `ports` (of process `pid`, or of any): data segments sent, received.

    Linux's tcp_info, read with ss, keyed by the connection's local address.
    """
    ports_filter = " or ".join(f"dport = :{port}" for port in ports)
    lines = subprocess.run(["ss", "-tinpH", "state", "established", f"( {ports_filter} )"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    sockets = {}
    local = None
    for line in lines:
        if not line[:1].isspace():
            fields = line.split()
            local = fields[2] if pid is None or f"pid={pid}," in line else None
        elif local:
            stats = dict(re.findall(r"\b(data_segs_out|data_segs_in):(\d+)", line))
            sockets[local] = [int(stats.get("data_segs_out", 0)), int(stats.get("data_segs_in", 0))]
            local = None
    return sockets


def counters(server_pid):
    """What the server has sent to and received from PostgreSQL so far, and what the database counted.

    sockets: per connection of the server to PostgreSQL (local address), the TCP segments carrying data that the
    server sent and received (Linux's tcp_info, read with ss). Each round trip is one batch of protocol messages
    written at once and answered, so segments sent count round trips as long as a batch fits one segment (the
    loopback MSS is 32 KiB or more; an order's statements are well under).

    With BENCH_WORKER_URLS (the Citus workers, space-separated), also worker_sockets, the same for every connection
    to a worker (the coordinator's, for the requests' shards), and worker_transactions, the workers' transactions.
    """
    port = urllib.parse.urlsplit(os.environ["DATABASE_URL"]).port or 5432
    snapshot = {"sockets": segments([port], server_pid), **json.loads(psql(DATABASE_COUNTS))}
    if psql("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'") == "1":
        snapshot["statements"] = json.loads(psql(STATEMENT_COUNTS))
    workers = os.environ.get("BENCH_WORKER_URLS", "").split()
    if workers:
        snapshot["worker_sockets"] = segments([urllib.parse.urlsplit(url).port for url in workers])
        snapshot["worker_transactions"] = sum(
            int(psql("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
                     url)) for url in workers)
    return snapshot


def sent_since(before, after):
    """Segments sent over a run; a connection opened during it counts from zero, one closed during it is lost."""
    sent = sum(segments - before.get(local, [0, 0])[0] for local, (segments, _) in after.items())
    return sent, len(set(before) - set(after))


def round_trips(before, after, requests):
    """Per answered request, over one run: round trips, statements, transactions, and each table's scans."""
    requests = max(requests, 1)
    sent, closed = sent_since(before["sockets"], after["sockets"])
    tables = {
        name: {k: (v - before["tables"].get(name, {}).get(k, 0)) / requests for k, v in counts.items()}
        for name, counts in (after["tables"] or {}).items()
    }
    result = {
        "round_trips_per_request": round(sent / requests, 2),
        "connections_closed_during_run": closed,
        "transactions_per_request": round((after["transactions"] - before["transactions"]) / requests, 2),
        "per_request_by_table": {name: {k: round(v, 2) for k, v in counts.items()} for name, counts in tables.items()},
    }
    if "worker_sockets" in before:
        worker_sent, worker_closed = sent_since(before["worker_sockets"], after["worker_sockets"])
        result["worker_round_trips_per_request"] = round(worker_sent / requests, 2)
        result["worker_connections_closed_during_run"] = worker_closed
        result["worker_transactions_per_request"] = round(
            (after["worker_transactions"] - before["worker_transactions"]) / requests, 2)
    if "statements" in before and "statements" in after:
        result["statements_per_request"] = round(
            (after["statements"]["total"] - before["statements"]["total"]) / requests, 2)
        result["statements_by_text"] = {
            query: round((calls - before["statements"]["by_statement"].get(query, 0)) / requests, 2)
            for query, calls in after["statements"]["by_statement"].items()
            if calls > before["statements"]["by_statement"].get(query, 0)
        }
    return result


def normalise(entry):
    if entry["tool"] != "wrk":
        return entry
    wrk = entry.pop("wrk")
    seconds = wrk["duration_us"] / 1e6
    entry.update({
        "requests_per_second": round(wrk["requests"] / seconds, 1),
        "p50_ms": wrk["p50_us"] / 1000,
        "p90_ms": wrk["p90_us"] / 1000,
        "p99_ms": wrk["p99_us"] / 1000,
        "requests": wrk["requests"],
        "non_2xx": wrk["non_2xx"],
        "socket_errors": wrk["socket_errors"],
        "peak_rss_mib": round(entry.pop("peak_rss_kib") / 1024, 1),
        # CPU per answered request: the server's own, and the whole machine's (server, PostgreSQL, wrk).
        "server_cpu_us_per_request": round(entry["server_cpu_s"] * 1e6 / max(wrk["requests"], 1)),
        "machine_cpu_us_per_request": round(entry["machine_cpu_s"] * 1e6 / max(wrk["requests"], 1)),
        "machine_busy_percent": round(100 * entry["machine_cpu_s"] / seconds / os.cpu_count()),
        # Each database server's CPU per answered request (its postmaster and every process under it).
        "db_cpu_us_per_request": {
            node: round(cpu * 1e6 / max(wrk["requests"], 1)) for node, cpu in entry.pop("db_cpu_s", {}).items()},
    })
    if "counters_before" in entry:
        entry.update(round_trips(entry.pop("counters_before"), entry.pop("counters_after"), wrk["requests"]))
    return entry


def machine():
    def run(*command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "postgresql": run("psql", os.environ.get("DATABASE_URL", ""), "-qtAXc", "SHOW server_version"),
        "commit": run("git", "rev-parse", "--short", "HEAD"),
    }


def print_round_trips(entries):
    """Per answered request of each HTTP scenario: what it cost in talk to PostgreSQL."""
    measured = [e for e in entries if "round_trips_per_request" in e]
    if not measured:
        return
    tables = ["api_keys", "idempotency_keys", "templates", "accounts", "orders"]
    print("\nper request: round trips to PostgreSQL (TCP data segments the server sent), statements"
          " (pg_stat_statements, when the server preloads it), transactions (pg_stat_database),"
          " index and sequential scans per table, and rows written:")
    print(f"{'scenario':<30}{'conns':>6}{'requests':>10}{'round trips':>13}{'statements':>12}{'transactions':>14}"
          + "".join(f"{t:>18}" for t in tables) + f"{'rows written':>14}")
    for e in measured:
        by_table = e["per_request_by_table"]
        scans = [by_table.get(t, {}).get("idx_scan", 0) + by_table.get(t, {}).get("seq_scan", 0) for t in tables]
        written = sum(c["n_tup_ins"] + c["n_tup_upd"] + c["n_tup_del"] for c in by_table.values())
        closed = "*" if e["connections_closed_during_run"] else ""
        print(f"{e['scenario']:<30}{e['connections']:>6}{e['requests']:>10}"
              f"{str(e['round_trips_per_request']) + closed:>13}{e.get('statements_per_request', '-'):>12}"
              f"{e['transactions_per_request']:>14}" + "".join(f"{v:>18.2f}" for v in scans) + f"{written:>14.2f}")
    if any(e["connections_closed_during_run"] for e in measured):
        print("* a connection to PostgreSQL closed during the run: its round trips are missing from the figure")


def print_citus(runs):
    """The scenarios run on Citus (BENCH_CITUS=1) beside the single server's of the same run; returns the ratios."""
    pairs = [(scenario, connections) for scenario, connections in runs
             if scenario.startswith("citus_") and (scenario.removeprefix("citus_"), connections) in runs]
    if not pairs:
        return {}
    print("\nCitus (a coordinator and two workers on this machine) against the single server, per answered request:"
          " round trips from the server to its database and from the coordinator to the workers, transactions on"
          " the workers, and CPU in microseconds of the server, of each database server, and of the whole machine:")
    print(f"{'scenario':<28}{'conns':>6}{'single req/s':>14}{'Citus req/s':>13}{'Citus/single':>14}"
          f"{'p99 ms single':>15}{'p99 ms Citus':>14}{'round trips':>13}{'to workers':>12}{'worker tx':>11}"
          f"{'CPU us: server':>16}  {'database':<40}{'machine':>8}")
    ratios = {}
    for scenario, connections in pairs:
        citus = runs[(scenario, connections)]
        single = runs[(scenario.removeprefix("citus_"), connections)]
        ratio = citus["requests_per_second"] / single["requests_per_second"]
        ratios[f"Citus/single {scenario.removeprefix('citus_')} at {connections}"] = ratio
        for name, e in (("single", single), ("Citus", citus)):
            first = name == "single"
            db = e.get("db_cpu_us_per_request") or {}
            print(f"{scenario.removeprefix('citus_') + ' (' + name + ')':<28}{connections:>6}"
                  f"{round(single['requests_per_second'], 1) if first else '':>14}"
                  f"{'' if first else round(citus['requests_per_second'], 1):>13}"
                  f"{'' if first else round(ratio, 2):>14}"
                  f"{single['p99_ms'] if first else '':>15}{'' if first else citus['p99_ms']:>14}"
                  f"{e.get('round_trips_per_request', '-'):>13}{e.get('worker_round_trips_per_request', '-'):>12}"
                  f"{e.get('worker_transactions_per_request', '-'):>11}"
                  f"{e.get('server_cpu_us_per_request', '-'):>16}"
                  f"  {' '.join(f'{k} {v}' for k, v in db.items()) or '-':<40}"
                  f"{e.get('machine_cpu_us_per_request', '-'):>8}")
    return ratios


def report(raw_path, results_dir):
    entries = [normalise(json.loads(line)) for line in open(raw_path) if line.strip()]
    runs = {(e["scenario"], e.get("connections")): e for e in entries}

    def rps(scenario, connections=32):
        """Requests per second of a run, or None when this run left the scenario out (BENCH_QUICK=1)."""
        run = runs.get((scenario, connections))
        return run["requests_per_second"] if run else None

    def ratio(a, b):
        return None if a is None or b is None else a / b

    def p99(scenario):
        run = runs.get((scenario, 32))
        return run["p99_ms"] if run else None

    print()
    print(f"{'scenario':<30}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'peak RSS MiB':>14}{'non-2xx':>9}"
          f"{'ran':>9}{'replayed':>9}{'srv CPU us/req':>16}{'all CPU us/req':>16}{'busy %':>8}")
    for e in entries:
        if "requests_per_second" not in e:
            continue
        print(f"{e['scenario']:<30}{e['connections']:>6}{e['requests_per_second']:>9.0f}{e['p50_ms']:>9.2f}"
              f"{e['p99_ms']:>9.2f}{e.get('peak_rss_mib', '-'):>14}{e.get('non_2xx', '-'):>9}"
              f"{e.get('executed', '-'):>9}{e.get('replayed', '-'):>9}"
              f"{e.get('server_cpu_us_per_request', '-'):>16}{e.get('machine_cpu_us_per_request', '-'):>16}"
              f"{e.get('machine_busy_percent', '-'):>8}")
    # What the server counted must match what each scenario claims to measure.
    mislabelled = [
        f"{e['scenario']} at {e['connections']}: {e['executed']} ran, {e['replayed']} replayed"
        for e, scenario in ((e, e["scenario"].removeprefix("citus_")) for e in entries)
        if e.get("tool") == "wrk" and (
            (scenario.startswith("keyed") and e["replayed"] > 0)
            or (scenario == "replay" and e["executed"] > 0)
            or (scenario in ("unkeyed", "get") and e["executed"] + e["replayed"] > 0)
            or e["non_2xx"] > 0
        )
    ]
    sweep = next((e for e in entries if e["scenario"] == "sweep"), None)
    if sweep:
        print(f"\nsweep: {sweep['deleted']} expired keys deleted in {sweep['seconds']} s")

    print_round_trips(entries)

    peak_rss = max(e.get("peak_rss_mib", 0) for e in entries)
    # (name, value, comparison, target): the targets are reported as met or missed and never fail the run;
    # a target of None is reported without one.
    targets = [
        # Within reach of the database's limit: the service against the least the database can do for the same
        # work (pgbench on standalone tables of the same shape; bench/ceiling_*.sql).
        ("keyed / ceiling (c) BEGIN; key; order; COMMIT", ratio(rps("keyed"), rps("ceiling_key_order_tx")), ">=", 0.6),
        ("keyed / ceiling (b) key + order, one statement", ratio(rps("keyed"), rps("ceiling_key_order_cte")), None, None),
        ("unkeyed / ceiling (a) order INSERT alone", ratio(rps("unkeyed"), rps("ceiling_order")), ">=", 0.4),
        ("replay / get", ratio(rps("replay"), rps("get")), ">=", 0.9),
        ("keyed p99 ms", p99("keyed"), "<=", 25),
        ("peak RSS MiB", peak_rss, "<=", 100),
    ]
    earlier_targets = [
        ("keyed / unkeyed", ratio(rps("keyed"), rps("unkeyed")), ">=", 0.85),
        ("keyed / pgbench same statements", ratio(rps("keyed"), rps("pgbench_keyed_order")), ">=", 0.6),
        ("replay / keyed", ratio(rps("replay"), rps("keyed")), ">=", 1.5),
        ("keyed with grown table / empty table", ratio(rps("keyed_grown_table"), rps("keyed_empty_table")), ">=", 0.85),
        ("p99 during sweep / before sweep",
         ratio(p99("keyed_during_sweep"), p99("keyed_before_sweep")), "<=", 2.0),
    ]
    # Not targets: where the gap between the service and the ceilings lies, in the database alone.
    attribution = [
        ("pgbench same statements / ceiling (c)", ratio(rps("pgbench_keyed_order"), rps("ceiling_key_order_tx"))),
        ("ceiling (c) / ceiling (b)", ratio(rps("ceiling_key_order_tx"), rps("ceiling_key_order_cte"))),
        ("ceiling (b) / ceiling (a)", ratio(rps("ceiling_key_order_cte"), rps("ceiling_order"))),
        ("ceiling (a) with / without CHECK constraints", ratio(rps("ceiling_order_checked"), rps("ceiling_order"))),
        ("ceiling (c) with / without CHECK constraints",
         ratio(rps("ceiling_key_order_tx_checked"), rps("ceiling_key_order_tx"))),
        ("pgbench keyed / unkeyed (database floor)", ratio(rps("pgbench_keyed_order"), rps("pgbench_unkeyed_order"))),
        ("pgbench keyed, flush / no flush", ratio(rps("pgbench_keyed_order"), rps("pgbench_keyed_order_no_flush"))),
    ]
    ratios = {}
    met = {}
    for title, group in (("targets at 32 connections", targets),
                         ("earlier targets at 32 connections", earlier_targets)):
        print(f"\n{title} (never fail the run):")
        for name, value, op, target in group:
            if value is None:
                continue
            ratios[name] = value
            if target is None:
                print(f"  {name:<48}{value:>8.2f}   (no target)")
                continue
            ok = value >= target if op == ">=" else value <= target
            met[name] = ok
            print(f"  {name:<48}{value:>8.2f}   ({op} {target}) {'met' if ok else 'MISSED'}")
    print("\nthe database alone, at 32 connections (not targets):")
    for name, value in attribution:
        if value is None:
            continue
        ratios[name] = value
        print(f"  {name:<48}{value:>8.2f}")
    ratios.update(print_citus(runs))

    os.makedirs(results_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    path = os.path.join(results_dir, f"{stamp}.json")
    with open(path, "w") as out:
        json.dump({
            "time": stamp,
            "machine": machine(),
            "runs": entries,
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "targets_met": met,
        }, out, indent=2)
    print(f"\nwritten: {path}")
    if mislabelled:
        sys.exit("scenarios that did not measure what they claim:\n  " + "\n  ".join(mislabelled))


if __name__ == "__main__":
    if sys.argv[1] == "pgbench":
        pgbench(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif sys.argv[1] == "counters":
        print(json.dumps(counters(sys.argv[2])))
    elif sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
