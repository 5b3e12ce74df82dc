// node-postgres transcript for the differential check.
//
// Runs a fixed series of behaviours through the extended protocol
// (parameters, named statements, binary-free type parsing) and the simple
// one (multi-statement strings, empty queries), and prints, one line each,
// what the driver observed: rows and field types, every field of each
// error, notices, notifications, and the pid node-postgres was told at
// login against pg_backend_pid(). test_differential.py runs it straight
// against PostgreSQL and through sluice with the same environment and
// compares the transcripts, so nothing printed differs between two
// sessions on its own. Connection from PG* variables; DIFF_MODE=transaction
// leaves out what transaction mode does not promise (BackendKeyData's pid).
'use strict';
const { Client } = require('pg');

const MODE = process.env.DIFF_MODE || 'session';
const FIELDS = ['severity', 'code', 'message', 'detail', 'hint', 'position', 'internalPosition',
  'internalQuery', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'];

function out(...parts) {
  console.log(parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' | '));
}

async function run(c, q) {
  const label = typeof q === 'string' ? q : JSON.stringify(q);
  try {
    const r = await c.query(q);
    const results = Array.isArray(r) ? r : [r];
    for (const res of results) {
      out('ok', label.slice(0, 70), res.command, res.rowCount,
        (res.fields || []).map((f) => [f.name, f.dataTypeID, f.format]), res.rows);
    }
  } catch (e) {
    const f = {};
    for (const k of FIELDS) if (e[k] !== undefined) f[k] = e[k];
    out('error', label.slice(0, 70), f);
  }
}

async function main() {
  const c = new Client();
  const events = [];
  c.on('notice', (n) => events.push(['notice', n.severity, n.code, n.message, n.detail, n.hint]));
  c.on('notification', (n) => events.push(['notification', n.channel, n.payload,
    MODE === 'session' ? (n.processId === c.processID ? 'from its pid' : 'from another pid')
      : 'pid not compared']));
  await c.connect();
  const flush = () => { while (events.length) out(...events.shift()); };
  if (MODE === 'session') {
    const r = await c.query('SELECT pg_backend_pid() AS pid');
    out("backend pid is BackendKeyData's", r.rows[0].pid === c.processID);
  }
  const steps = [
    { text: 'SELECT $1::int + $2::int AS s, $3::text AS t, $4::numeric AS n, $5::date::text AS d',
      values: [2, 40, 'h\u00e9llo', '1.50', '2024-03-10'] },
    { text: 'SELECT $1::int', values: ['nope'] },
    { text: 'SELECT 1 +' },
    { text: 'SELECT $1::int AS x', values: [1, 2] },
    { name: 'diff_named', text: 'SELECT $1::int * 2 AS doubled', values: [21] },
    { name: 'diff_named', text: 'SELECT $1::int * 2 AS doubled', values: [50] },
    { name: 'diff_named', text: 'SELECT $1::int * 3 AS tripled', values: [1] },
    { name: 'diff_bad', text: 'SELECT nosuch FROM (SELECT 1 AS such) s' },
    { name: 'diff_bad', text: 'SELECT nosuch FROM (SELECT 1 AS such) s' },
    '',
    '-- only a comment',
    'SELECT 1 AS a; SELECT 2 AS b',
    'SELECT 1; SELECT 1/0; SELECT 3',
    'CREATE TEMP TABLE diff_n (id int PRIMARY KEY, v text)',
    { text: 'INSERT INTO diff_n VALUES ($1, $2), ($3, $4) RETURNING *', values: [1, 'a', 2, 'b'] },
    { text: 'INSERT INTO diff_n VALUES ($1, $2)', values: [1, 'dup'] },
    { text: 'SELECT * FROM diff_n WHERE id = ANY($1) ORDER BY id', values: [[1, 2, 3]] },
    { text: 'SELECT * FROM diff_n ORDER BY id', rowMode: 'array' },
    "DO $$ BEGIN RAISE NOTICE 'n %', 1; RAISE WARNING 'w' USING DETAIL = 'd', HINT = 'h'; END $$",
    { text: "SELECT 'x' AS v FROM pg_sleep(0)" },
    'BEGIN',
    { text: 'INSERT INTO diff_n VALUES ($1, $2)', values: [3, 'c'] },
    'SAVEPOINT a',
    { text: 'INSERT INTO diff_n VALUES ($1, $2)', values: [3, 'again'] },
    'SELECT 1',
    'ROLLBACK TO a',
    { name: 'diff_count', text: 'SELECT count(*) FROM diff_n' },
    'COMMIT',
    { name: 'diff_count', text: 'SELECT count(*) FROM diff_n' },
    "SET DateStyle = 'SQL, DMY'",
    { text: "SELECT $1::date::text AS d, date '2024-03-10' AS native", values: ['2024-03-10'] },
    'RESET DateStyle',
    'LISTEN diff_nchan',
    "NOTIFY diff_nchan, 'simple'",
    { text: "SELECT pg_notify('diff_nchan', $1)", values: ['extended'] },
    'UNLISTEN *',
    "SET statement_timeout = '50ms'",
    { text: 'SELECT pg_sleep($1)', values: [0.3] },
    'RESET statement_timeout',
    { text: 'SELECT $1::text IS NULL AS is_null, $2::int[] AS arr, $3::jsonb AS j',
      values: [null, [1, 2], { a: 1 }] },
    'DISCARD ALL',
    { name: 'diff_count', text: 'SELECT count(*) FROM diff_n' },
  ];
  for (const q of steps) {
    await run(c, q);
    flush();
  }
  await c.end();
  out('done');
}

main().catch((e) => { console.log(`FAIL ${e && e.stack ? e.stack : e}`); process.exit(1); });
