#!/usr/bin/env python3
"""Statement-table memory: many statements of many distinct shapes.

Usage: shapes.py PORT PID [STATEMENTS] [SHAPES]

Sends STATEMENTS statements (default 1,000,000) of SHAPES distinct
normalized shapes (default 100,000; "SELECT $1 AS c<k>") through the sluice
on PORT, 100 to a simple Query, and prints sluice's RSS (PID) after each
tenth: with max_tracked_statements bounding the table, it must stay flat
once the table is full.
"""
import sys
import time

import psycopg2


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    total = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    shapes = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
    c = psycopg2.connect(host="127.0.0.1", port=port, user="app", password="app",
                         dbname="app")
    c.autocommit = True
    cur = c.cursor()
    batch = 100
    sent = 0
    step = total // 10
    nxt = step
    t0 = time.monotonic()
    print(f"shapes: {total} statements, {shapes} shapes; RSS before {rss_kb(pid)} kB")
    while sent < total:
        sql = ";".join(f"SELECT {sent + i} AS c{(sent + i) % shapes}" for i in range(batch))
        cur.execute(sql)
        sent += batch
        if sent >= nxt:
            print(f"  after {sent:>9,} statements: RSS {rss_kb(pid):>8,} kB "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
            nxt += step
    c.close()


if __name__ == "__main__":
    main()
