// node-postgres through sluice in transaction mode: parameterized queries,
// named prepared statements reused across transactions and servers, errors,
// notices, COPY both ways and a 100 MB result.
//
// Connection from the environment: PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGDATABASE. Prints "ok NAME" or "FAIL NAME: why" per check and exits
// non-zero if any check failed.
'use strict';
const { Client } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { pipeline } = require('stream/promises');
const { Readable, Writable } = require('stream');

let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
async function connect() {
  const c = new Client();
  await c.connect();
  return c;
}

async function main() {
  await check('parameterized', async () => {
    const c = await connect();
    const r = await c.query('SELECT $1::int + $2::int AS s, $3::text AS t', [2, 40, 'héllo']);
    assert(r.rows[0].s === 42, `sum ${r.rows[0].s}`);
    assert(r.rows[0].t === 'héllo', `text ${r.rows[0].t}`);
    await c.end();
  });

  await check('named prepared statements across transactions', async () => {
    // more clients than servers: each statement lands on varying servers
    const clients = await Promise.all([...Array(6)].map(connect));
    const seen = new Set();
    await Promise.all(clients.map(async (c, ci) => {
      for (let i = 0; i < 40; i++) {
        const r = await c.query({ name: 'add_one', text: 'SELECT $1::int + 1 AS v, pg_backend_pid() AS pid', values: [i] });
        assert(r.rows[0].v === i + 1, `client ${ci} got ${r.rows[0].v} for ${i}`);
        seen.add(r.rows[0].pid);
        const r2 = await c.query({ name: 'cat', text: 'SELECT $1::text || $2::text AS v', values: ['a', String(i)] });
        assert(r2.rows[0].v === 'a' + i, `cat ${r2.rows[0].v}`);
      }
    }));
    assert(seen.size >= 2, `expected statements to run on several servers, saw ${seen.size}`);
    await Promise.all(clients.map((c) => c.end()));
  });

  await check('prepared statement inside an explicit transaction', async () => {
    const c = await connect();
    await c.query('BEGIN');
    const a = await c.query({ name: 'txq', text: 'SELECT $1::int * 2 AS v', values: [21] });
    const b = await c.query({ name: 'txq', text: 'SELECT $1::int * 2 AS v', values: [5] });
    await c.query('COMMIT');
    assert(a.rows[0].v === 42 && b.rows[0].v === 10, 'wrong results');
    await c.end();
  });

  await check('errors keep the session usable', async () => {
    const c = await connect();
    let code = null;
    try {
      await c.query('SELECT 1/0');
    } catch (e) {
      code = e.code;
    }
    assert(code === '22012', `expected 22012, got ${code}`);
    try {
      await c.query({ name: 'bad', text: 'SELECT * FROM no_such_table_xyz', values: [] });
    } catch (e) {
      code = e.code;
    }
    assert(code === '42P01', `expected 42P01, got ${code}`);
    const r = await c.query({ name: 'add_one', text: 'SELECT $1::int + 1 AS v', values: [1] });
    assert(r.rows[0].v === 2, 'query after errors');
    await c.end();
  });

  await check('notices', async () => {
    const c = await connect();
    const notices = [];
    c.on('notice', (n) => notices.push(n.message));
    await c.query("DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$");
    assert(notices.includes('hello from plpgsql'), `notices: ${JSON.stringify(notices)}`);
    await c.end();
  });

  await check('copy in and out', async () => {
    const c = await connect();
    await c.query('DROP TABLE IF EXISTS node_copy; CREATE TABLE node_copy (id int, name text)');
    const rows = [];
    for (let i = 0; i < 5000; i++) rows.push(`${i}\tname ${i}\n`);
    await pipeline(Readable.from(rows), c.query(copyFrom('COPY node_copy FROM STDIN')));
    const n = await c.query('SELECT count(*)::int AS n, sum(id)::bigint AS s FROM node_copy');
    assert(n.rows[0].n === 5000, `count ${n.rows[0].n}`);
    assert(String(n.rows[0].s) === String((4999 * 5000) / 2), `sum ${n.rows[0].s}`);
    let bytes = 0;
    let lines = 0;
    await pipeline(c.query(copyTo('COPY node_copy TO STDOUT')), new Writable({
      write(chunk, enc, cb) {
        bytes += chunk.length;
        for (const b of chunk) if (b === 10) lines++;
        cb();
      },
    }));
    assert(lines === 5000, `copied out ${lines} lines`);
    assert(bytes > 50000, `copied out ${bytes} bytes`);
    await c.query('DROP TABLE node_copy');
    await c.end();
  });

  await check('100 MB result', async () => {
    const c = await connect();
    const r = await c.query("SELECT repeat('x', 1000) AS v FROM generate_series(1, 100000)");
    let total = 0;
    for (const row of r.rows) total += row.v.length;
    assert(r.rows.length === 100000, `rows ${r.rows.length}`);
    assert(total === 100000000, `bytes ${total}`);
    await c.end();
  });

  console.log(`${failed === 0 ? 'all' : failed} ${failed === 0 ? 'node checks passed' : 'node checks failed'}`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL main: ${e.stack}`);
  process.exit(1);
});
