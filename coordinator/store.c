/* store.c — see store.h. */
#include "coordinator/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { Q_INSERT_JOB, Q_FIND_SID, Q_UPDATE_JOB, Q_PUT_ATTEMPT, Q_PUT_WORKER, Q_EVENT, Q_GET_JOB, Q_GET_ATTEMPTS,
       Q_LAST_ATTEMPT, Q_MAX_JOB, Q_MAX_TOKEN, Q_N };

/* The columns a job row and an attempt row are read with (row_job, row_attempt). */
#define JOB_COLS                                                                                 \
  "id, submission_id, spec, state, reason, submit_time, start_time, end_time, exit_code,"       \
  " restart_count, failures, submitter"
#define ATTEMPT_COLS                                                                              \
  "job_id, n, token, placement, start_time, end_time, state, exit_code, signal, resume_from, reason"

/* A submission id is its submitter's own: unique per (submitter, id), the
 * submitter '' when there is none (no CURVE, or a job from before). */
#define JOBS_COLUMNS                                                                              \
  "(id INTEGER PRIMARY KEY, submission_id TEXT, spec BLOB NOT NULL,"                              \
  " state INTEGER NOT NULL, reason TEXT, submit_time REAL, start_time REAL, end_time REAL,"       \
  " exit_code INTEGER, restart_count INTEGER, failures INTEGER, submitter TEXT NOT NULL DEFAULT ''," \
  " UNIQUE(submitter, submission_id))"

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS jobs" JOBS_COLUMNS ";"
    "CREATE TABLE IF NOT EXISTS attempts("
    " job_id INTEGER NOT NULL, n INTEGER NOT NULL, token INTEGER NOT NULL UNIQUE,"
    " placement TEXT, start_time REAL, end_time REAL, state INTEGER, exit_code INTEGER,"
    " signal INTEGER, resume_from TEXT, reason TEXT, PRIMARY KEY(job_id, n));"
    "CREATE TABLE IF NOT EXISTS workers("
    " name TEXT PRIMARY KEY, host TEXT, slots INTEGER, gpus INTEGER, drain INTEGER,"
    " down INTEGER, registered_time REAL, last_heartbeat REAL);"
    "CREATE TABLE IF NOT EXISTS events("
    " id INTEGER PRIMARY KEY, time REAL, job_id INTEGER, worker TEXT, text TEXT);";

static const char *const SQL[Q_N] = {
    [Q_INSERT_JOB] = "INSERT INTO jobs(submission_id, spec, state, reason, submit_time, start_time,"
                     " end_time, exit_code, restart_count, failures, submitter) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
    [Q_FIND_SID] = "SELECT id FROM jobs WHERE submitter = ? AND submission_id = ?",
    [Q_UPDATE_JOB] = "UPDATE jobs SET state=?, reason=?, start_time=?, end_time=?, exit_code=?,"
                     " restart_count=?, failures=? WHERE id=?",
    [Q_PUT_ATTEMPT] = "INSERT OR REPLACE INTO attempts(job_id, n, token, placement, start_time,"
                      " end_time, state, exit_code, signal, resume_from, reason)"
                      " VALUES(?,?,?,?,?,?,?,?,?,?,?)",
    [Q_PUT_WORKER] = "INSERT OR REPLACE INTO workers(name, host, slots, gpus, drain, down,"
                     " registered_time, last_heartbeat) VALUES(?,?,?,?,?,?,?,?)",
    [Q_EVENT] = "INSERT INTO events(time, job_id, worker, text) VALUES(?,?,?,?)",
    [Q_GET_JOB] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?",
    [Q_GET_ATTEMPTS] = "SELECT " ATTEMPT_COLS " FROM attempts WHERE job_id = ? ORDER BY n",
    [Q_LAST_ATTEMPT] = "SELECT " ATTEMPT_COLS " FROM attempts WHERE job_id = ? ORDER BY n DESC LIMIT 1",
    [Q_MAX_JOB] = "SELECT IFNULL(MAX(id), 0) FROM jobs",
    [Q_MAX_TOKEN] = "SELECT IFNULL(MAX(token), 0) FROM attempts",
};

/* After the migrations: what store_load_live reads by. (state, end_time)
 * covers its choice of rows, so a start reads this index, not every job's
 * row; once, on a database from before it, building it costs one pass. */
static const char *const INDEXES = "CREATE INDEX IF NOT EXISTS jobs_state_end ON jobs(state, end_time);";

/* 1 if jobs has a UNIQUE index on submission_id alone (the tables before
 * ids were scoped to their submitter), 0 if not, -1 on an error. */
static int sid_global(sqlite3 *db) {
  sqlite3_stmt *q = NULL, *qi = NULL;
  int found = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA index_list(jobs)", -1, &q, NULL) != SQLITE_OK) return -1;
  while (!found && sqlite3_step(q) == SQLITE_ROW) {
    if (!sqlite3_column_int(q, 2)) continue; /* not unique */
    char *sql = sqlite3_mprintf("PRAGMA index_info(%Q)", (const char *)sqlite3_column_text(q, 1));
    if (!sql || sqlite3_prepare_v2(db, sql, -1, &qi, NULL) != SQLITE_OK) found = -1;
    sqlite3_free(sql);
    int ncol = 0, sid = 0;
    while (found >= 0 && sqlite3_step(qi) == SQLITE_ROW) {
      ncol++;
      const unsigned char *name = sqlite3_column_text(qi, 2);
      sid |= name && !strcmp((const char *)name, "submission_id");
    }
    sqlite3_finalize(qi);
    qi = NULL;
    if (found >= 0 && ncol == 1 && sid) found = 1;
  }
  sqlite3_finalize(q);
  return found;
}

/* Migrations, so an old data root keeps working:
 *  - jobs from before the submitter column get it (no submitter: the
 *    admin's alone);
 *  - submission ids unique across all jobs become unique per submitter:
 *    SQLite cannot drop a column's UNIQUE, so the table is copied into one
 *    of today's shape (same ids) in one transaction. Cost: one pass over
 *    the jobs, once. */
static int migrate(sqlite3 *db, char **msg) {
  sqlite3_stmt *q = NULL;
  int has_submitter = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA table_info(jobs)", -1, &q, NULL) != SQLITE_OK) return 1;
  while (sqlite3_step(q) == SQLITE_ROW)
    if (!strcmp((const char *)sqlite3_column_text(q, 1), "submitter")) has_submitter = 1;
  sqlite3_finalize(q);
  if (!has_submitter && sqlite3_exec(db, "ALTER TABLE jobs ADD COLUMN submitter TEXT", NULL, NULL, msg)) return 1;
  int old = sid_global(db);
  if (old < 0) {
    *msg = sqlite3_mprintf("cannot read the jobs table's indexes: %s", sqlite3_errmsg(db));
    return 1;
  }
  if (!old) return 0;
  static const char *const SCOPE_IDS =
      "BEGIN IMMEDIATE;"
      "CREATE TABLE jobs_scoped" JOBS_COLUMNS ";"
      "INSERT INTO jobs_scoped(id, submission_id, spec, state, reason, submit_time, start_time, end_time,"
      " exit_code, restart_count, failures, submitter)"
      " SELECT id, submission_id, spec, state, reason, submit_time, start_time, end_time,"
      " exit_code, restart_count, failures, IFNULL(submitter, '') FROM jobs;"
      "DROP TABLE jobs;"
      "ALTER TABLE jobs_scoped RENAME TO jobs;"
      "COMMIT;";
  if (sqlite3_exec(db, SCOPE_IDS, NULL, NULL, msg)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return 1;
  }
  return 0;
}

struct store {
  sqlite3 *db;
  sqlite3_stmt *q[Q_N];
};

static int db_fail(store *s, foil_err *err, const char *what) {
  return foil_err_set(err, FOIL_EINTERNAL, "job store: %s: %s", what, sqlite3_errmsg(s->db));
}

int store_open(store **out, const char *path, foil_err *err) {
  *out = NULL;
  store *s = calloc(1, sizeof *s);
  if (!s) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  int rc = FOIL_OK;
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    rc = foil_err_set(err, FOIL_EINTERNAL, "cannot open the job store %s: %s", path,
                      s->db ? sqlite3_errmsg(s->db) : "no memory");
    goto done;
  }
  sqlite3_busy_timeout(s->db, 5000);
  /* WAL + FULL: a commit is on disk when it returns (acknowledge after it) */
  char *msg = NULL;
  if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &msg) ||
      sqlite3_exec(s->db, SCHEMA, NULL, NULL, &msg) || migrate(s->db, &msg) ||
      sqlite3_exec(s->db, INDEXES, NULL, NULL, &msg)) {
    rc = foil_err_set(err, FOIL_EINTERNAL, "job store %s is not usable: %s", path, msg ? msg : "?");
    sqlite3_free(msg);
    goto done;
  }
  for (int i = 0; i < Q_N && !rc; i++)
    if (sqlite3_prepare_v2(s->db, SQL[i], -1, &s->q[i], NULL) != SQLITE_OK)
      rc = foil_err_set(err, FOIL_EINTERNAL, "job store %s has another schema: %s", path,
                        sqlite3_errmsg(s->db));
done:
  if (rc) store_close(&s);
  *out = s;
  return rc;
}

void store_close(store **sp) {
  store *s = *sp;
  if (!s) return;
  for (int i = 0; i < Q_N; i++) sqlite3_finalize(s->q[i]);
  sqlite3_close(s->db);
  free(s);
  *sp = NULL;
}

static int exec(store *s, const char *sql, foil_err *err) {
  if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(s, err, sql);
  return FOIL_OK;
}
int store_begin(store *s, foil_err *err) { return exec(s, "BEGIN IMMEDIATE", err); }
int store_commit(store *s, foil_err *err) { return exec(s, "COMMIT", err); }
void store_rollback(store *s) { sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); }

static void text(sqlite3_stmt *q, int i, const char *v) {
  if (v && *v) sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(q, i);
}

/* Steps a prepared statement once to completion and resets it. */
static int run(store *s, sqlite3_stmt *q, foil_err *err, const char *what) {
  int r = sqlite3_step(q);
  int rc = (r == SQLITE_DONE || r == SQLITE_ROW) ? FOIL_OK : db_fail(s, err, what);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return rc;
}

int store_insert_job(store *s, store_job *j, foil_err *err) {
  sqlite3_stmt *q = s->q[Q_INSERT_JOB];
  text(q, 1, j->submission_id);
  sqlite3_bind_blob(q, 2, j->spec_len ? j->spec : (const void *)"", (int)j->spec_len, SQLITE_TRANSIENT);
  sqlite3_bind_int(q, 3, j->state);
  text(q, 4, j->reason);
  sqlite3_bind_double(q, 5, j->submit_time);
  sqlite3_bind_double(q, 6, j->start_time);
  sqlite3_bind_double(q, 7, j->end_time);
  sqlite3_bind_int(q, 8, j->exit_code);
  sqlite3_bind_int64(q, 9, j->restart_count);
  sqlite3_bind_int64(q, 10, j->failures);
  sqlite3_bind_text(q, 11, j->submitter ? j->submitter : "", -1, SQLITE_TRANSIENT); /* '' is none: a key */
  int rc = run(s, q, err, "insert job");
  if (!rc) j->id = (uint64_t)sqlite3_last_insert_rowid(s->db);
  return rc;
}

int store_find_submission(store *s, const char *submitter, const char *sid, uint64_t *id, foil_err *err) {
  *id = 0;
  if (!sid || !*sid) return FOIL_OK;
  sqlite3_stmt *q = s->q[Q_FIND_SID];
  sqlite3_bind_text(q, 1, submitter ? submitter : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 2, sid, -1, SQLITE_TRANSIENT);
  int r = sqlite3_step(q);
  if (r == SQLITE_ROW) *id = (uint64_t)sqlite3_column_int64(q, 0);
  int rc = (r == SQLITE_ROW || r == SQLITE_DONE) ? FOIL_OK : db_fail(s, err, "find submission");
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return rc;
}


int store_update_job(store *s, const store_job *j, foil_err *err) {
  sqlite3_stmt *q = s->q[Q_UPDATE_JOB];
  sqlite3_bind_int(q, 1, j->state);
  text(q, 2, j->reason);
  sqlite3_bind_double(q, 3, j->start_time);
  sqlite3_bind_double(q, 4, j->end_time);
  sqlite3_bind_int(q, 5, j->exit_code);
  sqlite3_bind_int64(q, 6, j->restart_count);
  sqlite3_bind_int64(q, 7, j->failures);
  sqlite3_bind_int64(q, 8, (sqlite3_int64)j->id);
  return run(s, q, err, "update job");
}

int store_put_attempt(store *s, const store_attempt *a, foil_err *err) {
  sqlite3_stmt *q = s->q[Q_PUT_ATTEMPT];
  sqlite3_bind_int64(q, 1, (sqlite3_int64)a->job_id);
  sqlite3_bind_int64(q, 2, a->n);
  sqlite3_bind_int64(q, 3, (sqlite3_int64)a->token);
  text(q, 4, a->placement);
  sqlite3_bind_double(q, 5, a->start_time);
  sqlite3_bind_double(q, 6, a->end_time);
  sqlite3_bind_int(q, 7, a->state);
  sqlite3_bind_int(q, 8, a->exit_code);
  sqlite3_bind_int(q, 9, a->signal);
  text(q, 10, a->resume_from);
  text(q, 11, a->reason);
  return run(s, q, err, "write attempt");
}

int store_put_worker(store *s, const store_worker *w, foil_err *err) {
  sqlite3_stmt *q = s->q[Q_PUT_WORKER];
  text(q, 1, w->name);
  text(q, 2, w->host);
  sqlite3_bind_int64(q, 3, w->slots);
  sqlite3_bind_int64(q, 4, w->gpus);
  sqlite3_bind_int(q, 5, w->drain);
  sqlite3_bind_int(q, 6, w->down);
  sqlite3_bind_double(q, 7, w->registered_time);
  sqlite3_bind_double(q, 8, w->last_heartbeat);
  return run(s, q, err, "write worker");
}

int store_event(store *s, double time, uint64_t job_id, const char *worker, const char *txt,
                foil_err *err) {
  sqlite3_stmt *q = s->q[Q_EVENT];
  sqlite3_bind_double(q, 1, time);
  if (job_id) sqlite3_bind_int64(q, 2, (sqlite3_int64)job_id);
  else sqlite3_bind_null(q, 2);
  text(q, 3, worker);
  text(q, 4, txt);
  return run(s, q, err, "write event");
}

static const char *col_text(sqlite3_stmt *q, int i) {
  const unsigned char *t = sqlite3_column_text(q, i);
  return t ? (const char *)t : "";
}

static store_job row_job(sqlite3_stmt *q) {
  return (store_job){.id = (uint64_t)sqlite3_column_int64(q, 0),
                     .submission_id = col_text(q, 1),
                     .spec = sqlite3_column_blob(q, 2),
                     .spec_len = (size_t)sqlite3_column_bytes(q, 2),
                     .state = sqlite3_column_int(q, 3),
                     .reason = col_text(q, 4),
                     .submit_time = sqlite3_column_double(q, 5),
                     .start_time = sqlite3_column_double(q, 6),
                     .end_time = sqlite3_column_double(q, 7),
                     .exit_code = sqlite3_column_int(q, 8),
                     .restart_count = (uint32_t)sqlite3_column_int64(q, 9),
                     .failures = (uint32_t)sqlite3_column_int64(q, 10),
                     .submitter = col_text(q, 11)};
}

static store_attempt row_attempt(sqlite3_stmt *q) {
  return (store_attempt){.job_id = (uint64_t)sqlite3_column_int64(q, 0),
                         .n = (uint32_t)sqlite3_column_int64(q, 1),
                         .token = (uint64_t)sqlite3_column_int64(q, 2),
                         .placement = col_text(q, 3),
                         .start_time = sqlite3_column_double(q, 4),
                         .end_time = sqlite3_column_double(q, 5),
                         .state = sqlite3_column_int(q, 6),
                         .exit_code = sqlite3_column_int(q, 7),
                         .signal = sqlite3_column_int(q, 8),
                         .resume_from = col_text(q, 9),
                         .reason = col_text(q, 10)};
}

/* Runs the three queries (workers, jobs, attempts; NULL: skipped), each
 * row to its callback. bind: the double bound to ?1 of the jobs and
 * attempts queries (when they have one). */
static int load_rows(store *s, const store_loader *l, const char *const sql[3], double bind, foil_err *err) {
  sqlite3_stmt *q = NULL;
  int rc = FOIL_OK, r = SQLITE_DONE;
  for (int t = 0; t < 3 && !rc; t++) {
    if (!sql[t]) continue;
    if (sqlite3_prepare_v2(s->db, sql[t], -1, &q, NULL) != SQLITE_OK) return db_fail(s, err, "load");
    if (sqlite3_bind_parameter_count(q) > 0) sqlite3_bind_double(q, 1, bind);
    while (!rc && (r = sqlite3_step(q)) == SQLITE_ROW) {
      if (t == 0) {
        store_worker w = {col_text(q, 0), col_text(q, 1), (uint32_t)sqlite3_column_int64(q, 2),
                          (uint32_t)sqlite3_column_int64(q, 3), sqlite3_column_int(q, 4),
                          sqlite3_column_int(q, 5), sqlite3_column_double(q, 6),
                          sqlite3_column_double(q, 7)};
        rc = l->worker ? l->worker(l->ctx, &w) : 0;
      } else if (t == 1) {
        store_job j = row_job(q);
        rc = l->job ? l->job(l->ctx, &j) : 0;
      } else {
        store_attempt a = row_attempt(q);
        rc = l->attempt ? l->attempt(l->ctx, &a) : 0;
      }
    }
    if (!rc && r != SQLITE_DONE) rc = db_fail(s, err, "load");
    if (rc && err && !err->msg[0]) foil_err_set(err, rc, "job store: a row does not load");
    sqlite3_finalize(q);
  }
  return rc;
}

#define WORKERS_SQL \
  "SELECT name, host, slots, gpus, drain, down, registered_time, last_heartbeat FROM workers ORDER BY name"

int store_load(store *s, const store_loader *l, foil_err *err) {
  const char *sql[3] = {WORKERS_SQL, "SELECT " JOB_COLS " FROM jobs ORDER BY id",
                        "SELECT " ATTEMPT_COLS " FROM attempts ORDER BY job_id, n"};
  return load_rows(s, l, sql, 0, err);
}

/* "a,b,c" of n states into out (size bytes); -1 when it does not fit. */
static int state_list(const int *states, size_t n, char *out, size_t size) {
  size_t len = 0;
  out[0] = 0;
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(out + len, size - len, "%s%d", i ? "," : "", states[i]);
    if (w < 0 || (size_t)w >= size - len) return -1;
    len += (size_t)w;
  }
  return 0;
}

int store_load_live(store *s, const store_loader *l, const int *done, size_t ndone, double since, foil_err *err) {
  char list[256], which[700], jobs[1000], atts[1000];
  if (!ndone || state_list(done, ndone, list, sizeof list))
    return foil_err_set(err, FOIL_EINVAL, "store_load_live: 1 to about 50 final states");
  /* the ids come from the index jobs_state_end alone (a subquery it
   * covers); the rows and attempts then by their keys */
  snprintf(which, sizeof which,
           "(SELECT id FROM jobs WHERE state NOT IN (%s) UNION SELECT id FROM jobs WHERE state IN (%s) AND end_time >= ?1)",
           list, list);
  snprintf(jobs, sizeof jobs, "SELECT " JOB_COLS " FROM jobs WHERE id IN %s ORDER BY id", which);
  snprintf(atts, sizeof atts, "SELECT " ATTEMPT_COLS " FROM attempts WHERE job_id IN %s ORDER BY job_id, n", which);
  const char *sql[3] = {WORKERS_SQL, jobs, atts};
  return load_rows(s, l, sql, since, err);
}

int store_max_ids(store *s, uint64_t *job_id, uint64_t *token, foil_err *err) {
  *job_id = *token = 0;
  sqlite3_stmt *q = s->q[Q_MAX_JOB];
  int rc = FOIL_OK;
  if (sqlite3_step(q) == SQLITE_ROW) *job_id = (uint64_t)sqlite3_column_int64(q, 0);
  else rc = db_fail(s, err, "the largest job id");
  sqlite3_reset(q);
  q = s->q[Q_MAX_TOKEN];
  if (!rc) {
    if (sqlite3_step(q) == SQLITE_ROW) *token = (uint64_t)sqlite3_column_int64(q, 0);
    else rc = db_fail(s, err, "the largest attempt token");
  }
  sqlite3_reset(q);
  return rc;
}

int store_get_job(store *s, uint64_t id, const store_loader *l, int last_only, int *found, foil_err *err) {
  *found = 0;
  sqlite3_stmt *q = s->q[Q_GET_JOB];
  sqlite3_bind_int64(q, 1, (sqlite3_int64)id);
  int r = sqlite3_step(q), rc = FOIL_OK;
  if (r == SQLITE_ROW) {
    *found = 1;
    store_job j = row_job(q);
    rc = l->job ? l->job(l->ctx, &j) : 0;
  } else if (r != SQLITE_DONE) {
    rc = db_fail(s, err, "read job");
  }
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (rc || !*found || !l->attempt) return rc;
  return store_get_attempts(s, id, l, last_only, err);
}

int store_get_attempts(store *s, uint64_t job_id, const store_loader *l, int last_only, foil_err *err) {
  sqlite3_stmt *q = s->q[last_only ? Q_LAST_ATTEMPT : Q_GET_ATTEMPTS];
  sqlite3_bind_int64(q, 1, (sqlite3_int64)job_id);
  int r, rc = FOIL_OK;
  while (!rc && (r = sqlite3_step(q)) == SQLITE_ROW) {
    store_attempt a = row_attempt(q);
    rc = l->attempt(l->ctx, &a);
  }
  if (!rc && r != SQLITE_DONE) rc = db_fail(s, err, "read attempts");
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (rc && err && !err->msg[0])
    foil_err_set(err, rc, "job store: job %llu's attempts do not load", (unsigned long long)job_id);
  return rc;
}

int store_list_jobs(store *s, const int *states, size_t n, uint64_t max_id, int (*row)(void *ctx, const store_job *j),
                    void *ctx, foil_err *err) {
  char list[256], sql[700];
  if (state_list(states, n, list, sizeof list)) return foil_err_set(err, FOIL_EINVAL, "store_list_jobs: too many states");
  /* "+state": not by the index (it would sort every match first): the
   * rows newest first, as far back as the caller reads */
  snprintf(sql, sizeof sql, "SELECT " JOB_COLS " FROM jobs WHERE id <= ?1%s%s%s ORDER BY id DESC", n ? " AND +state IN (" : "",
           n ? list : "", n ? ")" : "");
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) return db_fail(s, err, "list jobs");
  sqlite3_bind_int64(q, 1, (sqlite3_int64)(max_id > INT64_MAX ? INT64_MAX : max_id));
  int r, rc = FOIL_OK, stop = 0;
  while (!stop && (r = sqlite3_step(q)) == SQLITE_ROW) {
    store_job j = row_job(q);
    stop = row(ctx, &j);
  }
  if (stop < 0) rc = foil_err_set(err, stop, "job store: a listed job does not load");
  else if (!stop && r != SQLITE_DONE) rc = db_fail(s, err, "list jobs");
  sqlite3_finalize(q);
  return rc;
}
