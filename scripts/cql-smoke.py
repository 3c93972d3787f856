#!/usr/bin/env python3
"""Smoke check of a CQL node: `scripts/cql-smoke.py 127.0.0.1:9042` (needs `pip install cassandra-driver`).

Prints the server's release_version, then writes and reads one row in a throw-away keyspace."""
import sys

from cassandra.cluster import Cluster

host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9042").rsplit(":", 1)
cluster = Cluster([host], port=int(port), protocol_version=4)
s = cluster.connect()
print("release_version:", s.execute("SELECT release_version FROM system.local").one().release_version)
s.execute("CREATE KEYSPACE IF NOT EXISTS fh_smoke WITH replication = {'class':'SimpleStrategy','replication_factor':1}")
s.execute("CREATE TABLE IF NOT EXISTS fh_smoke.t (k text PRIMARY KEY, v int)")
s.execute("INSERT INTO fh_smoke.t (k, v) VALUES ('a', 1)")
print("row:", list(s.execute("SELECT k, v FROM fh_smoke.t")))
s.execute("DROP KEYSPACE fh_smoke")
cluster.shutdown()
