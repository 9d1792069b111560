/* test_submit_ids.c — submission ids are the submitter's own (review-security
 * finding 5): a real coord (coord_new) on a fresh data root, submissions
 * through coord_submit (as the API and the refresh loop make them) and
 * through coord_api_handle, replies read back on a DEALER ("cli")
 * (coord_rig.h).
 *
 * What it proves:
 *  - a retried submit (same submitter, same id) returns the same job, also
 *    after a restart; another submitter's same id is a new job of its own;
 *  - ids starting "refresh-" are the coordinator's: a client's submit with
 *    one is INVALID_ARGUMENT saying so, the loop's (coord_submit) is taken,
 *    and a job of another submitter with the id the loop is about to use
 *    does not keep the loop's job from being made;
 *  - a job store written before (submission_id UNIQUE across all jobs, with
 *    or without the submitter column) is migrated: its jobs load, their ids
 *    are their submitters', and the table is UNIQUE(submitter, submission_id).
 */
#define _DEFAULT_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/client.h"
#include "common/fileio.h"
#include "coordinator/coord_int.h"
#include "tests/test.h"
#include "tests/unit/coord_rig.h"

/* ---- tests ----------------------------------------------------------------------- */

static void test_scoped(void) {
  if (fresh("scoped")) return;
  int ex = 0;
  uint64_t a = submit_job("alice", "nightly-1", 1, &ex, NULL);
  CHECK(a > 0 && !ex);
  uint64_t a2 = submit_job("alice", "nightly-1", 1, &ex, NULL);
  CHECKF(a2 == a && ex, "alice's retry: job %llu existing %d", (unsigned long long)a2, ex);
  uint64_t b = submit_job("bob", "nightly-1", 1, &ex, NULL);
  CHECKF(b > 0 && b != a && !ex, "bob's same id: job %llu existing %d (alice's is %llu)", (unsigned long long)b,
         ex, (unsigned long long)a);
  cjob *jb = coord_job(C, b);
  CHECK(jb && !strcmp(jb->submitter, "bob"));
  uint64_t b2 = submit_job("bob", "nightly-1", 1, &ex, NULL);
  CHECK(b2 == b && ex);
  uint64_t l = submit_job("", "nightly-1", 1, &ex, NULL);  /* the local user (no CURVE) */
  CHECK(l > 0 && l != a && l != b && !ex);
  stop();
  /* after a restart: the same answers from the store */
  if (start()) return;
  CHECK(submit_job("alice", "nightly-1", 1, &ex, NULL) == a && ex);
  CHECK(submit_job("bob", "nightly-1", 1, &ex, NULL) == b && ex);
  CHECK(submit_job("", "nightly-1", 1, &ex, NULL) == l && ex);
  uint64_t c = submit_job("carol", "nightly-1", 1, &ex, NULL);
  CHECK(c > l && !ex);
  stop();
}

static void test_reserved(void) {
  if (fresh("reserved")) return;
  /* a client's refresh-… id: refused, saying why */
  char *argv[] = {"true"};
  Foil__V1__JobSpec s = FOIL__V1__JOB_SPEC__INIT;
  s.kind = "command", s.argv = argv, s.n_argv = 1;
  Foil__V1__SubmitRequest sr = FOIL__V1__SUBMIT_REQUEST__INIT;
  sr.spec = &s, sr.submission_id = "refresh-7-10";
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_SUBMIT, q.submit = &sr;
  Foil__V1__Reply *r = api(&q);
  CHECKF(r && r->body_case == FOIL__V1__REPLY__BODY_ERROR &&
             client_code_to_err(r->error->code) == FOIL_EINVAL && strstr(r->error->message, "refresh-") &&
             strstr(r->error->message, "reserved"),
         "%s", r && r->body_case == FOIL__V1__REPLY__BODY_ERROR ? r->error->message : "accepted");
  if (r) foil__v1__reply__free_unpacked(r, NULL);
  CHECK(C->max_id == 0);
  /* other ids are the client's to choose */
  sr.submission_id = "my-refresh-7-10";
  r = api(&q);
  CHECK(r && r->body_case == FOIL__V1__REPLY__BODY_SUBMIT && r->submit->job_id == 1);
  if (r) foil__v1__reply__free_unpacked(r, NULL);
  /* the loop's own: bob's job with the id alice's loop will use (a store
   * from before the reservation) does not stand for alice's refresh */
  int ex = 0;
  uint64_t squat = submit_job("bob", "refresh-7-10", 1, &ex, NULL);
  CHECK(squat > 0 && !ex);
  uint64_t mine = submit_job("alice", "refresh-7-10", 1, &ex, NULL);
  CHECKF(mine > 0 && mine != squat && !ex, "alice's loop job: %llu existing %d", (unsigned long long)mine, ex);
  CHECK(submit_job("alice", "refresh-7-10", 1, &ex, NULL) == mine && ex);  /* the loop's retry */
  stop();
}

/* The unique indexes of jobs, as "(col,col) (col)" in buf. */
static const char *unique_indexes(char *buf, size_t n) {
  sqlite3 *db = db_open();
  sqlite3_stmt *q = NULL, *qi = NULL;
  size_t at = 0;
  buf[0] = 0;
  sqlite3_prepare_v2(db, "PRAGMA index_list(jobs)", -1, &q, NULL);
  while (q && sqlite3_step(q) == SQLITE_ROW) {
    if (!sqlite3_column_int(q, 2)) continue;  /* not unique */
    char isql[300];
    snprintf(isql, sizeof isql, "PRAGMA index_info('%s')", (const char *)sqlite3_column_text(q, 1));
    sqlite3_prepare_v2(db, isql, -1, &qi, NULL);
    at += (size_t)snprintf(buf + at, n - at, "%s(", at ? " " : "");
    for (int k = 0; qi && sqlite3_step(qi) == SQLITE_ROW && at < n; k++)
      at += (size_t)snprintf(buf + at, n - at, "%s%s", k ? "," : "", (const char *)sqlite3_column_text(qi, 2));
    if (at < n) at += (size_t)snprintf(buf + at, n - at, ")");
    sqlite3_finalize(qi);
    qi = NULL;
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return buf;
}

/* The tables as store.c made them before ids were scoped; with_submitter:
 * the jobs table had its submitter column (added in place by the first
 * migration), else it is older still. */
static void old_schema(int with_submitter) {
  char text[2048];
  snprintf(text, sizeof text,
           "CREATE TABLE jobs(id INTEGER PRIMARY KEY, submission_id TEXT UNIQUE, spec BLOB NOT NULL,"
           " state INTEGER NOT NULL, reason TEXT, submit_time REAL, start_time REAL, end_time REAL,"
           " exit_code INTEGER, restart_count INTEGER, failures INTEGER%s);"
           "CREATE TABLE attempts(job_id INTEGER NOT NULL, n INTEGER NOT NULL, token INTEGER NOT NULL UNIQUE,"
           " placement TEXT, start_time REAL, end_time REAL, state INTEGER, exit_code INTEGER,"
           " signal INTEGER, resume_from TEXT, reason TEXT, PRIMARY KEY(job_id, n));"
           "CREATE TABLE workers(name TEXT PRIMARY KEY, host TEXT, slots INTEGER, gpus INTEGER, drain INTEGER,"
           " down INTEGER, registered_time REAL, last_heartbeat REAL);"
           "CREATE TABLE events(id INTEGER PRIMARY KEY, time REAL, job_id INTEGER, worker TEXT, text TEXT);",
           with_submitter ? ", submitter TEXT" : "");
  sql(text);
}

/* Inserts a finished command job (old schema) with submission id sid and
 * submitter who (NULL: the column left out or NULL). */
static void old_job(const char *sid, const char *who) {
  char *argv[] = {"true"};
  Foil__V1__Resources res = FOIL__V1__RESOURCES__INIT;
  res.ranks = 1;
  Foil__V1__JobSpec s = FOIL__V1__JOB_SPEC__INIT;
  s.kind = "command", s.name = "old", s.argv = argv, s.n_argv = 1, s.resources = &res;
  size_t len = protobuf_c_message_get_packed_size(&s.base);
  uint8_t buf[256];
  protobuf_c_message_pack(&s.base, buf);
  char hex[600], text[1200];
  for (size_t i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", buf[i]);
  char whos[80] = "";
  if (who) snprintf(whos, sizeof whos, ", '%s'", who);
  snprintf(text, sizeof text,
           "INSERT INTO jobs(submission_id, spec, state, reason, submit_time, start_time, end_time,"
           " exit_code, restart_count, failures%s) VALUES('%s', x'%s', %d, '', 1.0, 0, 2.0, 0, 0, 0%s)",
           who ? ", submitter" : "", sid, hex, FOIL__V1__JOB_STATE__JOB_COMPLETED, whos);
  sql(text);
}

static void test_migration(void) {
  char ix[512];
  for (int with_submitter = 0; with_submitter < 2; with_submitter++) {
    use_root(with_submitter ? "old-submitter" : "old-oldest");
    old_schema(with_submitter);
    old_job("s1", with_submitter ? "alice" : NULL);  /* job 1 */
    old_job("s2", NULL);                              /* job 2: no submitter (admin's) */
    if (start()) continue;
    CHECKF(C->max_id == 2, "the old jobs load: %llu", (unsigned long long)C->max_id);
    const char *owner = with_submitter ? "alice" : "";
    int ex = 0;
    CHECKF(submit_job(owner, "s1", 1, &ex, NULL) == 1 && ex, "job 1's retry by its submitter \"%s\"", owner);
    CHECK(submit_job("", "s2", 1, &ex, NULL) == 2 && ex);
    uint64_t b = submit_job("bob", "s1", 1, &ex, NULL);
    CHECKF(b == 3 && !ex, "bob's s1 is a new job: %llu existing %d", (unsigned long long)b, ex);
    CHECK(submit_job("bob", "s2", 1, &ex, NULL) == 4 && !ex);
    stop();
    unique_indexes(ix, sizeof ix);
    CHECKF(strstr(ix, "(submitter,submission_id)") && !strstr(ix, "(submission_id)"), "unique: %s", ix);
    /* the store itself refuses a second (submitter, id) */
    const char *again = "INSERT INTO jobs(submission_id, spec, state, submitter) VALUES('s1', x'00', 1, 'bob')";
    CHECK(sql_run(again, NULL, 0) != SQLITE_OK);
    /* and opens again (migrated once) with every job */
    if (start()) continue;
    CHECK(C->max_id == 4 && submit_job("bob", "s1", 1, &ex, NULL) == 3 && ex);
    stop();
  }
  /* a new store has the same constraint */
  use_root("new");
  if (start()) return;
  stop();
  unique_indexes(ix, sizeof ix);
  CHECKF(strstr(ix, "(submitter,submission_id)") && !strstr(ix, "(submission_id)"), "unique: %s", ix);
}

int main(void) {
  if (rig_init("sid")) return 1;
  RUN(test_scoped);
  RUN(test_reserved);
  RUN(test_migration);
  if (rig_done()) return 1;
  TEST_EXIT();
}
