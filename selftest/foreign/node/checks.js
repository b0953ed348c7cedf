// Microsoft's JavaScript TDS driver (tedious) against a SQL Server: the checks of issue 27 item 6, each
// as an application would make them, their answers printed as one JSON document on stdout for
// selftest/e2e/test_foreign_tedious.py to judge (this script judges nothing).
//
// Input (environment, never argv: the password is a secret): TDS_SERVER, TDS_PORT, TDS_USER, TDS_PASSWORD,
// TDS_SERVER_NAME (the name in its certificate), TDS_DATABASE, TDS_CA_FILE (the CA that issued the server's
// certificate), TDS_OTHER_CA_FILE (one that did not), TDS_JOB (an Agent job to start), TDS_STATEMENTS (a JSON
// array of batches for the `statements` check), TDS_CHECKS (which checks, comma-separated; all by default).
'use strict';
const fs = require('fs');
const { Connection, Request, TYPES } = require('tedious');

const env = process.env;

function connect(overrides = {}) {
  const config = {
    server: env.TDS_SERVER,
    authentication: { type: 'default', options: { userName: env.TDS_USER, password: env.TDS_PASSWORD } },
    options: {
      port: Number(env.TDS_PORT),
      database: env.TDS_DATABASE,
      encrypt: true,
      trustServerCertificate: false,
      cryptoCredentialsDetails: { ca: fs.readFileSync(overrides.caFile || env.TDS_CA_FILE) },
      connectTimeout: 10000,
      cancelTimeout: 5000,
      requestTimeout: 0,
      // the name the certificate is validated against (and TLS's SNI): the SQL Server's, not its address
      serverName: env.TDS_SERVER_NAME,
      ...(overrides.options || {}),
    },
  };
  if (overrides.password !== undefined) config.authentication.options.password = overrides.password;
  return new Promise((resolve, reject) => {
    const conn = new Connection(config);
    const infos = [];
    const errors = [];
    const token = (m) => ({ number: m.number, state: m.state, class: m.class, message: m.message });
    conn.on('infoMessage', (m) => infos.push(token(m)));
    conn.on('errorMessage', (m) => errors.push(token(m))); // a login's ERROR tokens (tedious' ConnectionError has no number)
    conn.on('error', () => {}); // a connection-level error is seen by the request that follows
    conn.connect((err) => (err ? reject(Object.assign(err, { tokens: errors })) : resolve({ conn, infos })));
  });
}

function run(conn, sql, params = [], { proc = false, cancelAfterMs = null } = {}) {
  return new Promise((resolve) => {
    const rows = [];
    const statuses = [];
    const request = new Request(sql, (err, rowCount) => {
      resolve({
        error: err ? describe(err) : null, rowCount, rows, returnStatuses: statuses,
      });
    });
    for (const [name, type, value] of params) request.addParameter(name, TYPES[type], value);
    request.on('row', (cols) => rows.push(cols.map((c) => c.value)));
    request.on('doneProc', (_count, _more, status) => statuses.push(status === undefined ? null : status));
    if (proc) conn.callProcedure(request); else conn.execSql(request);
    if (cancelAfterMs !== null) setTimeout(() => conn.cancel(), cancelAfterMs);
  });
}

function describe(err) {
  const inner = err.errors ? err.errors : null;
  return {
    name: err.name, code: err.code || null, number: err.number ?? null, state: err.state ?? null,
    class: err.class ?? null, message: err.message, inner: inner ? inner.map((e) => e.message) : null,
    tokens: err.tokens || null,
  };
}

// each check gets two open connections (a, b) and the first's info messages; returns what it saw
const CHECKS = {
  login: async ({ login }) => ({ infos: login }),
  select: async ({ a }) => run(a, 'SELECT gi_SecretServer FROM SSODB.dbo.SSOX_GlobalInfo'),
  rpc_params: async ({ a }) => run(a, 'SELECT @answer + 1 AS n, @name AS name',
    [['answer', 'Int', 41], ['name', 'NVarChar', 'tedious']]),
  error_208: async ({ a }) => run(a, 'SELECT * FROM SSODB.dbo.NoSuchTable'),
  error_207: async ({ a }) => run(a, 'SELECT no_such_column FROM SSODB.dbo.SSOX_GlobalInfo'),
  // a procedure's return status over RPC: the lock from a second session is refused with -1
  applock: async ({ a, b }) => {
    const lock = [['Resource', 'NVarChar', 'tedious-probe'], ['LockMode', 'NVarChar', 'Exclusive'],
      ['LockOwner', 'NVarChar', 'Session'], ['LockTimeout', 'Int', 0]];
    const release = [lock[0], lock[2]];
    return {
      first: await run(a, 'sp_getapplock', lock, { proc: true }),
      second: await run(b, 'sp_getapplock', lock, { proc: true }),
      release_other: await run(b, 'sp_releaseapplock', release, { proc: true }),
      release: await run(a, 'sp_releaseapplock', release, { proc: true }),
    };
  },
  // an informational message's number: sp_start_job's "Job '…' started successfully." is 14243
  start_job: async ({ a, infos }) => {
    infos.length = 0;
    const res = await run(a, 'msdb.dbo.sp_start_job', [['job_name', 'NVarChar', env.TDS_JOB]], { proc: true });
    return { ...res, infos: infos.slice() };
  },
  // cancel: a long WAITFOR cancelled after 300 ms; the same connection answers the next request
  cancel: async ({ a }) => {
    const t0 = Date.now();
    const res = await run(a, "WAITFOR DELAY '01:00:00'", [], { cancelAfterMs: 300 });
    return { ...res, ms: Date.now() - t0, after: await run(a, 'SELECT 1 AS one') };
  },
  // each statement of TDS_STATEMENTS (a JSON array) as a batch on the first connection: rows or the error
  statements: async ({ a }) => {
    const out = [];
    for (const sql of JSON.parse(env.TDS_STATEMENTS || '[]')) out.push(await run(a, sql));
    return out;
  },
  // a wrong password: 18456
  bad_login: async () => {
    try {
      const { conn } = await connect({ password: 'not-the-password' });
      conn.close();
      return null;
    } catch (err) {
      return describe(err);
    }
  },
  // a CA that did not issue the server's certificate: the TLS handshake fails
  other_ca: async () => {
    try {
      const { conn } = await connect({ caFile: env.TDS_OTHER_CA_FILE });
      conn.close();
      return null;
    } catch (err) {
      return describe(err);
    }
  },
};

async function main() {
  const names = (env.TDS_CHECKS || Object.keys(CHECKS).join(',')).split(',');
  const { conn: a, infos } = await connect();
  const { conn: b } = await connect();
  const ctx = { a, b, infos, login: infos.slice() };
  const out = {};
  for (const name of names) {
    if (!CHECKS[name]) throw new Error(`no check named ${name}`);
    out[name] = await CHECKS[name](ctx);
  }
  a.close();
  b.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ fatal: describe(err) }) + '\n');
  process.exitCode = 1;
});
