/* test_agent.c — foil-worker's agent against a scripted coordinator: a
 * ROUTER socket in this process plays the coordinator of worker.proto, the
 * agent runs in a forked child. Register, assign and run a command to
 * COMPLETED (its output in the job log), Finished resent until acked,
 * cancel with a grace, time limit with the warn signal, a launch failure,
 * a kill list, progress from rank 0, register again on
 * FAILED_PRECONDITION, and shutdown on SIGTERM. A launch error cut to
 * fit is still UTF-8; names that are not plain names are refused. A
 * Register refused UNAVAILABLE is retried with backoff; one refused
 * INVALID_ARGUMENT stops the agent with that error. More job ends than a
 * frame holds still register, the rest following one by one. The routing
 * id is NAME/INSTANCE; a Register refused ALREADY_EXISTS (another process
 * has the name) stops the agent's jobs, not the agent, which registers
 * again after the time the refusal gives. A clean shutdown ends with a
 * Goodbye (only while registered), its answer awaited a second at most. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/wire.h"
#include "foil/v1/worker.pb-c.h"
#include "tests/test.h"
#include "worker/agent/agent.h"
#include "worker/agent/outbox.h"
#include "worker/run/progress.h"

static char tmp[1024], endpoint[1200], self_exe[1024];
static void *ctx, *router;
static volatile sig_atomic_t child_stop = 0;
/* the agent's name; test_many_finished's is another, so that what an earlier agent
 * sent late is not taken for its */
static const char *name = "w1";
/* the running agent's routing id (NAME/INSTANCE, learnt from its first
 * message; "" until then), and those of agents before it, whose late
 * messages are skipped */
static char route[300];
static char retired[8][300];
static int nretired;
static void on_term(int s) { (void)s; child_stop = 1; }

/* The job that test_progress_forwarded runs: rank 0 sending progress,
 * after a forger (the right job and token, a wrong or no progress key:
 * any local process can reach the loopback socket) sent its own. */
static int progress_child(void) {
  const char *key = getenv("FOIL_PROGRESS_KEY");
  if (!key || strlen(key) != 32) return 4;
  char real[64];
  snprintf(real, sizeof real, "%s", key);
  progress *p = NULL;
  const char *forged[] = {"00000000000000000000000000000000", ""};
  for (int f = 0; f < 2; f++) {
    setenv("FOIL_PROGRESS_KEY", forged[f], 1);
    if (progress_open(&p, NULL) || !progress_active(p)) return 3;
    for (int i = 0; i < 5; i++) {
      progress_send(p, 1000, 40, "forged", "{\"checkpoint_step\":1000000000}");
      usleep(20000);
    }
    progress_destroy(&p);
  }
  setenv("FOIL_PROGRESS_KEY", real, 1);
  if (progress_open(&p, NULL) || !progress_active(p)) return 3;
  for (int i = 1; i <= 40; i++) {
    char msg[64];
    snprintf(msg, sizeof msg, "step %d/40", i);
    progress_send(p, i, 40, msg, "{\"loss\":1.5}");
    usleep(50000);
  }
  progress_destroy(&p);
  return 0;
}

static pid_t start_agent(void) {
  if (route[0] && nretired < 8) snprintf(retired[nretired++], sizeof retired[0], "%s", route);
  route[0] = 0;
  pid_t pid = fork();
  if (pid == 0) {
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    char root[1100], logp[1100];
    snprintf(root, sizeof root, "%s/root", tmp);
    snprintf(logp, sizeof logp, "%s/worker.log", tmp);
    FILE *log = fopen(logp, "w");
    agent_config cfg = {.coordinator = endpoint, .root = root, .name = name, .host = "localhost", .slots = 2,
                        .gpus = 2, .foil_run = "foil-run", .mpirun = "mpirun", .grace_s = 1, .log = log};
    agent *a = NULL;
    foil_err err = {0};
    int rc = agent_new(&a, &cfg, &err);
    if (!rc) rc = agent_run(a, &child_stop, &err);
    if (rc) fprintf(stderr, "agent: %s\n", err.msg);
    agent_destroy(&a);
    fclose(log);
    _exit(rc ? 1 : 0);
  }
  return pid;
}

static void send_to_worker(Foil__V1__CoordinatorMessage *m) {
  CHECK(route[0] && wire_send(router, route, &m->base, 0, NULL) == FOIL_OK);
}

/* 1 when a message from peer is the running agent's: its route, or (none
 * known yet) NAME/... that no earlier agent had, which becomes its route. */
static int from_agent(const char *peer) {
  if (route[0]) return !strcmp(peer, route);
  size_t n = strlen(name);
  if (strncmp(peer, name, n) || peer[n] != '/') return 0;
  for (int i = 0; i < nretired; i++)
    if (!strcmp(peer, retired[i])) return 0;
  snprintf(route, sizeof route, "%s", peer);
  return 1;
}

static void reply(uint64_t request_id, int body_case, void *body) {
  Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  m.request_id = request_id;
  m.body_case = body_case;
  switch (body_case) {
    case FOIL__V1__COORDINATOR_MESSAGE__BODY_ACK: m.ack = body; break;
    case FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR: m.error = body; break;
    case FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED: m.registered = body; break;
    case FOIL__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT: m.heartbeat = body; break;
    default: break;
  }
  send_to_worker(&m);
}

/* Registered for request_id: heartbeats every 100 ms, liveness 5, goodbye
 * taken or not (an older coordinator). */
static void accept_register(uint64_t request_id, int goodbye) {
  Foil__V1__Registered r = FOIL__V1__REGISTERED__INIT;
  r.heartbeat_ms = 100, r.liveness = 5, r.goodbye = goodbye;
  reply(request_id, FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED, &r);
}

static void ack(uint64_t id) {
  Foil__V1__Ack a = FOIL__V1__ACK__INIT;
  reply(id, FOIL__V1__COORDINATOR_MESSAGE__BODY_ACK, &a);
}

/* kill list for the next heartbeat answer */
static Foil__V1__AttemptRef *next_kill;
static int ack_finished = 1;
static int finished_seen;  /* Finished reports wait_for answered, for a test to count */
static Foil__V1__Progress last_progress;
static char last_progress_msg[128];
static uint64_t progress_job;
static int forged_seen;

/* Receives the next worker message of the wanted kind, answering the
 * others as a coordinator would. NULL on timeout. */
static Foil__V1__WorkerMessage *wait_for(int body_case, double timeout_s) {
  double t0 = log_mono();
  while (log_mono() - t0 < timeout_s) {
    zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 100) <= 0) continue;
    wire_msg w;
    if (wire_recv(router, &w, 1, 1 << 20, 0, NULL)) {
      wire_msg_close(&w);
      continue;
    }
    char peer[300];
    wire_msg_peer(&w, peer, sizeof peer);
    if (!from_agent(peer)) {  /* late, from an agent of an earlier test */
      wire_msg_close(&w);
      continue;
    }
    Foil__V1__WorkerMessage *m = foil__v1__worker_message__unpack(NULL, zmq_msg_size(&w.body), zmq_msg_data(&w.body));
    wire_msg_close(&w);
    CHECK(m != NULL);
    if (!m) continue;
    if ((int)m->body_case == body_case) return m;
    switch (m->body_case) {
      case FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT: {
        Foil__V1__HeartbeatAck h = FOIL__V1__HEARTBEAT_ACK__INIT;
        if (next_kill) {
          h.n_kill = 1, h.kill = &next_kill;
        }
        reply(m->request_id, FOIL__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT, &h);
        next_kill = NULL;
        break;
      }
      case FOIL__V1__WORKER_MESSAGE__BODY_REGISTER: {
        accept_register(m->request_id, 1);
        break;
      }
      case FOIL__V1__WORKER_MESSAGE__BODY_PROGRESS:
        if (m->progress->progress) {
          forged_seen += !strcmp(m->progress->progress->message, "forged");
          last_progress = *m->progress->progress;
          snprintf(last_progress_msg, sizeof last_progress_msg, "%s", m->progress->progress->message);
          progress_job = m->progress->job_id;
        }
        ack(m->request_id);
        break;
      case FOIL__V1__WORKER_MESSAGE__BODY_FINISHED:
        finished_seen++;
        if (ack_finished) ack(m->request_id);
        break;
      default:
        ack(m->request_id);
    }
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  return NULL;
}

static void assign(uint64_t job, uint64_t token, char **argv, size_t argc, double deadline, int warn_signal,
                   unsigned warn_before, unsigned gpus_per_rank) {
  Foil__V1__Resources res = FOIL__V1__RESOURCES__INIT;
  res.ranks = 1, res.gpus_per_rank = gpus_per_rank;
  Foil__V1__JobSpec sp = FOIL__V1__JOB_SPEC__INIT;
  sp.kind = "command", sp.argv = argv, sp.n_argv = argc, sp.resources = &res;
  sp.warn_signal = warn_signal, sp.warn_before_s = warn_before;
  Foil__V1__Placement pl = FOIL__V1__PLACEMENT__INIT, *plp = &pl;
  pl.worker = (char *)name, pl.host = "localhost", pl.ranks = 1;
  Foil__V1__Assign as = FOIL__V1__ASSIGN__INIT;
  char jd[1200];
  snprintf(jd, sizeof jd, "%s/root/jobs/%llu", tmp, (unsigned long long)job);
  as.job_id = job, as.token = token, as.spec = &sp, as.placement = &plp, as.n_placement = 1, as.head = 1;
  as.attempt = 1, as.job_dir = jd, as.deadline = deadline, as.grace_s = 1;
  Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  m.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN;
  m.assign = &as;
  send_to_worker(&m);
}

static char *job_log(uint64_t job) {
  char p[1200], *data = NULL;
  snprintf(p, sizeof p, "%s/root/jobs/%llu/log", tmp, (unsigned long long)job);
  if (foil_read_file(p, &data, NULL, NULL)) return strdup("");
  return data;
}

/* The next Finished of job (late resends of others, already acked, are
 * acked again and skipped, as a coordinator does). */
static Foil__V1__WorkerMessage *expect_finished(uint64_t job, double timeout) {
  double t0 = log_mono();
  Foil__V1__WorkerMessage *m;
  while ((m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, timeout - (log_mono() - t0))) &&
         m->finished->job_id != job) {
    ack(m->request_id);
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  CHECK(m && m->finished->job_id == job);
  if (m && ack_finished) ack(m->request_id);
  return m;
}

static void test_register(void) {
  Foil__V1__WorkerMessage *m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 5);
  CHECK(m != NULL);
  if (!m) return;
  CHECK(!strcmp(m->register_->name, "w1") && !strcmp(m->register_->host, "localhost"));
  /* its routing id: the name and this process's own instance (16 hex digits) */
  CHECKF(strlen(route) == 19 && !strncmp(route, "w1/", 3) && strspn(route + 3, "0123456789abcdef") == 16, "%s",
         route);
  CHECK(m->register_->slots == 2 && m->register_->gpus == 2 && m->register_->n_running == 0);
  accept_register(m->request_id, 1);
  foil__v1__worker_message__free_unpacked(m, NULL);
  /* heartbeats now come at 100 ms */
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, 2);
  CHECK(m != NULL);
  if (m) foil__v1__worker_message__free_unpacked(m, NULL);
}

static void test_completed_and_resend(void) {
  char *argv[] = {"sh", "-c", "echo hello-$FOIL_JOB_ID-$FOIL_ATTEMPT_TOKEN-$CUDA_VISIBLE_DEVICES", NULL};
  ack_finished = 0;
  assign(1, 11, argv, 3, 0, 0, 0, 2);
  Foil__V1__WorkerMessage *s = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_STARTED, 5);
  CHECK(s && s->started->job_id == 1 && s->started->token == 11 && s->started->pid > 0);
  if (s) {
    ack(s->request_id);
    foil__v1__worker_message__free_unpacked(s, NULL);
  }
  Foil__V1__WorkerMessage *f = expect_finished(1, 5);
  if (!f) return;
  CHECK(f->finished->state == FOIL__V1__JOB_STATE__JOB_COMPLETED && f->finished->exit_code == 0);
  uint64_t id = f->request_id;
  foil__v1__worker_message__free_unpacked(f, NULL);
  /* not acked: it comes again, same request id */
  f = expect_finished(1, 2);
  CHECK(f && f->request_id == id);
  if (f) foil__v1__worker_message__free_unpacked(f, NULL);
  ack(id);
  ack_finished = 1;
  CHECK(!wait_for(FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, 0.5)); /* and no more */
  char *log = job_log(1);
  CHECKF(strstr(log, "hello-1-11-0,1\n") != NULL, "%s", log);
  CHECKF(strstr(log, "attempt 1 (token 11) on w1: sh -c 'echo hello-") != NULL, "%s", log);
  CHECKF(strstr(log, "ended: COMPLETED") != NULL, "%s", log);
  free(log);
}

static void test_cancel(void) {
  char *argv[] = {"sh", "-c", "trap '' TERM; echo up; sleep 30 & wait; sleep 30", NULL};
  assign(2, 12, argv, 3, 0, 0, 0, 0);
  Foil__V1__WorkerMessage *s = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_STARTED, 5);
  CHECK(s != NULL);
  pid_t pg = s ? s->started->pid : 0;
  if (s) {
    ack(s->request_id);
    foil__v1__worker_message__free_unpacked(s, NULL);
  }
  usleep(300000);
  CHECK(pg > 0 && kill(-pg, 0) == 0);
  Foil__V1__Signal sg = FOIL__V1__SIGNAL__INIT;
  sg.job_id = 2, sg.token = 12, sg.stop = 1, sg.grace_s = 1, sg.state = FOIL__V1__JOB_STATE__JOB_CANCELLED;
  Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  m.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_SIGNAL;
  m.signal = &sg;
  double t0 = log_mono();
  send_to_worker(&m);
  Foil__V1__WorkerMessage *f = expect_finished(2, 6);
  double took = log_mono() - t0;
  CHECKF(took > 0.8 && took < 4, "%.2f s", took); /* TERM ignored: KILL after the 1 s grace */
  if (f) {
    CHECK(f->finished->state == FOIL__V1__JOB_STATE__JOB_CANCELLED && f->finished->signal == SIGKILL);
    foil__v1__worker_message__free_unpacked(f, NULL);
  }
  CHECK(pg > 0 && kill(-pg, 0) != 0);
}

static void test_timeout_warn(void) {
  char *argv[] = {"sh", "-c", "trap 'echo warned' USR1; i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done",
                  NULL};
  assign(3, 13, argv, 3, log_now() + 1.5, SIGUSR1, 1, 0);
  Foil__V1__WorkerMessage *f = expect_finished(3, 8);
  if (f) {
    CHECK(f->finished->state == FOIL__V1__JOB_STATE__JOB_TIMEOUT);
    foil__v1__worker_message__free_unpacked(f, NULL);
  }
  char *log = job_log(3);
  CHECKF(strstr(log, "warned\n") != NULL, "%s", log);
  CHECKF(strstr(log, "time limit reached") != NULL, "%s", log);
  free(log);
}

static void test_launch_failure(void) {
  char *argv[] = {"/nonexistent/prog", NULL};
  assign(4, 14, argv, 1, 0, 0, 0, 0);
  Foil__V1__WorkerMessage *f = expect_finished(4, 5);
  if (f) {
    CHECK(f->finished->state == FOIL__V1__JOB_STATE__JOB_FAILED);
    CHECKF(strstr(f->finished->message, "cannot run /nonexistent/prog") != NULL, "%s", f->finished->message);
    foil__v1__worker_message__free_unpacked(f, NULL);
  }
  /* a launch error over foil_err's 512 bytes, with non-ASCII text where it is
   * cut: still UTF-8, so the coordinator takes the report */
  static char prog[700];
  snprintf(prog, sizeof prog, "/nonexistent/");
  for (int i = 0; i < 200; i++) strcat(prog, "\xe6\x97\xa5");  /* U+65E5, 3 bytes */
  char *wide[] = {prog, NULL};
  assign(45, 145, wide, 1, 0, 0, 0, 0);
  f = expect_finished(45, 5);
  if (f) {
    foil_err e = {0};
    CHECK(f->finished->state == FOIL__V1__JOB_STATE__JOB_FAILED);
    CHECKF(!strncmp(f->finished->message, "cannot run /nonexistent/", 24) && strlen(f->finished->message) < 512,
           "%s", f->finished->message);
    CHECKF(wire_check_msg(&f->base, &e) == FOIL_OK, "%s", e.msg);
    foil__v1__worker_message__free_unpacked(f, NULL);
  }
  /* more GPUs than the worker has */
  char *ok[] = {"true", NULL};
  assign(44, 144, ok, 1, 0, 0, 0, 3);
  f = expect_finished(44, 5);
  if (f) {
    CHECK(f->finished->state == FOIL__V1__JOB_STATE__JOB_FAILED && strstr(f->finished->message, "GPU"));
    foil__v1__worker_message__free_unpacked(f, NULL);
  }
}

/* Worker names go into the coordinator's placements ("w:r,w:r"): only
 * plain names are taken. */
static void test_bad_names(void) {
  char big[200];
  memset(big, 'a', sizeof big - 1), big[sizeof big - 1] = 0;
  const char *bad[] = {"gpu,1", "a:b", "", ".", "..", "a/b", "n\xc3\xa9", big};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    agent_config cfg = {.coordinator = endpoint, .root = tmp, .name = bad[i], .host = "localhost", .slots = 1};
    agent *a = NULL;
    foil_err err = {0};
    CHECKF(agent_new(&a, &cfg, &err) == FOIL_EINVAL && a == NULL && strstr(err.msg, "worker name"), "%s: %s",
           bad[i], err.msg);
    agent_destroy(&a);
  }
}

static void test_kill_list(void) {
  char *argv[] = {"sleep", "30", NULL};
  assign(5, 15, argv, 2, 0, 0, 0, 0);
  Foil__V1__WorkerMessage *s = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_STARTED, 5);
  pid_t pg = s ? s->started->pid : 0;
  if (s) foil__v1__worker_message__free_unpacked(s, NULL); /* not acked: replaced anyway */
  static Foil__V1__AttemptRef ref = FOIL__V1__ATTEMPT_REF__INIT;
  ref.job_id = 5, ref.token = 15;
  next_kill = &ref;
  /* no Finished for it, and its group is gone */
  Foil__V1__WorkerMessage *f;
  double t0 = log_mono();
  while ((f = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, 1.5 - (log_mono() - t0)))) {
    CHECK(f->finished->job_id != 5);
    ack(f->request_id);
    foil__v1__worker_message__free_unpacked(f, NULL);
  }
  CHECK(next_kill == NULL);
  CHECK(pg > 0 && kill(-pg, 0) != 0);
}

static void test_progress_forwarded(void) {
  char *argv[] = {self_exe, "--progress-child", NULL};
  memset(&last_progress, 0, sizeof last_progress);
  assign(6, 16, argv, 2, 0, 0, 0, 0);
  Foil__V1__WorkerMessage *f = expect_finished(6, 10);
  if (f) {
    CHECKF(f->finished->state == FOIL__V1__JOB_STATE__JOB_COMPLETED, "%s", f->finished->message);
    foil__v1__worker_message__free_unpacked(f, NULL);
  }
  CHECK(progress_job == 6);
  CHECKF(last_progress.total == 40 && last_progress.value >= 30, "%g", last_progress.value);
  CHECKF(!strncmp(last_progress_msg, "step ", 5), "%s", last_progress_msg);
  CHECKF(forged_seen == 0, "%d update(s) without the attempt's progress key forwarded", forged_seen);
}

static void test_register_again(void) {
  Foil__V1__WorkerMessage *h = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, 2);
  CHECK(h != NULL);
  if (!h) return;
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = FOIL__V1__CODE__FAILED_PRECONDITION, e.message = "register";
  reply(h->request_id, FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR, &e);
  foil__v1__worker_message__free_unpacked(h, NULL);
  Foil__V1__WorkerMessage *r = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 2);
  CHECK(r != NULL);
  if (r) {
    accept_register(r->request_id, 1);
    foil__v1__worker_message__free_unpacked(r, NULL);
  }
}

static pid_t child;
/* SIGTERM with a job that ignores TERM (so the shutdown lasts its 1 s
 * grace): the job is stopped; an Assign that comes meanwhile is not
 * started; heartbeats go on listing the job; no Finished goes on its own
 * (it would free the slot before the coordinator knew this worker leaves):
 * both ends, NODE_FAIL, travel in the Goodbye, which frees the name now.
 * Left unanswered (a coordinator gone), the agent exits all the same,
 * 3 s after at most. */
static void test_shutdown(void) {
  char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30", NULL};
  assign(7, 17, argv, 3, 0, 0, 0, 0);
  Foil__V1__WorkerMessage *s = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_STARTED, 5);
  pid_t pg = s ? s->started->pid : 0;
  if (s) {
    ack(s->request_id);
    foil__v1__worker_message__free_unpacked(s, NULL);
  }
  usleep(200000);  /* its trap set */
  kill(child, SIGTERM);
  usleep(200000);
  char *ok[] = {"true", NULL};
  assign(70, 170, ok, 1, 0, 0, 0, 0);
  Foil__V1__WorkerMessage *h = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, 2);
  int listed = 0;
  for (size_t i = 0; h && i < h->heartbeat->n_running; i++) listed += h->heartbeat->running[i]->job_id == 7;
  CHECKF(listed == 1, "a heartbeat while leaving lists the job %d time(s)", listed);
  if (h) foil__v1__worker_message__free_unpacked(h, NULL);
  finished_seen = 0;
  Foil__V1__WorkerMessage *g = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE, 8);
  double said = log_mono();
  CHECK(g != NULL && g->request_id != 0);
  CHECKF(finished_seen == 0, "%d Finished sent on their own while leaving", finished_seen);
  if (g) {
    const Foil__V1__Goodbye *b = g->goodbye;
    int j7 = 0, j70 = 0;
    for (size_t i = 0; b && i < b->n_finished; i++) {
      const Foil__V1__Finished *f = b->finished[i];
      j7 += f->job_id == 7 && f->token == 17 && f->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL &&
            strstr(f->message, "shut down") && f->signal == SIGKILL && !f->not_started;
      j70 += f->job_id == 70 && f->token == 170 && f->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL &&
             strstr(f->message, "not started") && f->not_started;
    }
    CHECKF(b && b->n_finished == 2 && j7 == 1 && j70 == 1, "the goodbye carries %zu end(s)", b ? b->n_finished : 0);
    foil__v1__worker_message__free_unpacked(g, NULL);
  }
  int st = -1;
  pid_t r = 0;
  while ((r = waitpid(child, &st, WNOHANG)) == 0 && log_mono() - said < 6) usleep(20000);
  CHECK(r == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECKF(log_mono() - said < 4.5, "exited %.2f s after its goodbye", log_mono() - said);
  CHECK(pg > 0 && kill(-pg, 0) != 0);
  char p[1200], *log = NULL;
  snprintf(p, sizeof p, "%s/worker.log", tmp);
  if (foil_read_file(p, &log, NULL, NULL)) log = strdup("");
  CHECKF(log && strstr(log, "no answer to the goodbye"), "%s", log);
  free(log);
}

static void refuse(uint64_t request_id, int code, const char *msg) {
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = code, e.message = (char *)msg;
  reply(request_id, FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR, &e);
}

/* A new agent whose Register is refused: UNAVAILABLE is retried, further
 * apart each time; INVALID_ARGUMENT stops it, agent_run returning the error
 * (its process exits 1 here; foil-worker's main exits with the code). */
static void test_register_refused(void) {
  child = start_agent();
  Foil__V1__WorkerMessage *m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 5);
  CHECK(m != NULL);
  if (!m) return;
  double t[3] = {log_mono(), 0, 0};
  refuse(m->request_id, FOIL__V1__CODE__UNAVAILABLE, "register: 1 job end(s) could not be recorded");
  foil__v1__worker_message__free_unpacked(m, NULL);
  for (int i = 1; i < 3; i++) {
    m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 10);
    CHECK(m != NULL);
    if (!m) return;
    t[i] = log_mono();
    if (i < 2) refuse(m->request_id, FOIL__V1__CODE__UNAVAILABLE, "still not recorded");
    else refuse(m->request_id, FOIL__V1__CODE__INVALID_ARGUMENT, "register: worker name \"w1\" is not allowed here");
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  /* 1 s between Registers at first: 2 s, then 4 s after refusals */
  CHECKF(t[1] - t[0] > 1.7 && t[2] - t[1] > 3.5, "%.2f s, then %.2f s", t[1] - t[0], t[2] - t[1]);
  int st = -1;
  double t0 = log_mono();
  pid_t r = 0;
  while ((r = waitpid(child, &st, WNOHANG)) == 0 && log_mono() - t0 < 5) usleep(20000);
  CHECKF(r == child && WIFEXITED(st) && WEXITSTATUS(st) == 1, "the agent %s", r == child ? "exited 0" : "still runs");
  if (r != child) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  char p[1200], *log = NULL;
  snprintf(p, sizeof p, "%s/worker.log", tmp);
  if (foil_read_file(p, &log, NULL, NULL)) log = strdup("");
  CHECKF(log && strstr(log, "refuses to register worker w1: INVALID_ARGUMENT: register: worker name"), "%s", log);
  CHECKF(log && strstr(log, "registering again in 4 s"), "%s", log);
  free(log);
}

/* The next message from the running agent, whatever it is (nothing is
 * answered); NULL on timeout. */
static Foil__V1__WorkerMessage *next_from_agent(double timeout_s) {
  double t0 = log_mono();
  while (log_mono() - t0 < timeout_s) {
    zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 50) <= 0) continue;
    wire_msg w;
    char peer[300];
    int rc = wire_recv(router, &w, 1, 1 << 20, 0, NULL);
    wire_msg_peer(&w, peer, sizeof peer);
    Foil__V1__WorkerMessage *m =
        rc || !from_agent(peer) ? NULL : foil__v1__worker_message__unpack(NULL, zmq_msg_size(&w.body), zmq_msg_data(&w.body));
    wire_msg_close(&w);
    if (m) return m;
  }
  return NULL;
}

static void refuse_taken(uint64_t request_id, uint32_t retry_ms) {
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = FOIL__V1__CODE__ALREADY_EXISTS;
  e.message = "register: worker name \"w3\" is in use by a live foil-worker on host other (heard 0.1 s ago)";
  Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  m.request_id = request_id, m.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR, m.error = &e;
  m.retry_after_ms = retry_ms;
  send_to_worker(&m);
}

/* 1 when the agent (child) exits cleanly within 5 s, sending no goodbye
 * meanwhile (other messages are read and dropped). */
static int exits_without_goodbye(void) {
  int goodbyes = 0, st = -1;
  pid_t r = 0;
  for (double t0 = log_mono(); (r = waitpid(child, &st, WNOHANG)) == 0 && log_mono() - t0 < 5;) {
    Foil__V1__WorkerMessage *m = next_from_agent(0.1);
    if (m) {
      goodbyes += m->body_case == FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE;
      foil__v1__worker_message__free_unpacked(m, NULL);
    }
  }
  return r == child && WIFEXITED(st) && WEXITSTATUS(st) == 0 && goodbyes == 0;
}

/* A goodbye answered: logged, and the agent exits at once. An older
 * coordinator (its Registered without goodbye) gets the job ends on their
 * own, as before, and no goodbye. One that is not registered (refused,
 * here) says none: the name is not its own. */
static void test_goodbye(void) {
  child = start_agent();
  Foil__V1__WorkerMessage *m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 5);
  CHECK(m != NULL);
  if (!m) return;
  accept_register(m->request_id, 1);
  foil__v1__worker_message__free_unpacked(m, NULL);
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, 2);  /* registered */
  if (m) foil__v1__worker_message__free_unpacked(m, NULL);
  kill(child, SIGTERM);
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE, 3);
  CHECK(m != NULL);
  double said = log_mono();
  if (m) {
    ack(m->request_id);
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  int st = -1;
  pid_t r = 0;
  while ((r = waitpid(child, &st, WNOHANG)) == 0 && log_mono() - said < 5) usleep(20000);
  CHECK(r == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECKF(log_mono() - said < 0.8, "exited %.2f s after its goodbye was answered", log_mono() - said);
  char p[1200], *log = NULL;
  snprintf(p, sizeof p, "%s/worker.log", tmp);
  if (foil_read_file(p, &log, NULL, NULL)) log = strdup("");
  CHECKF(log && strstr(log, "said goodbye to the coordinator") && !strstr(log, "no answer to the goodbye"), "%s",
         log);
  free(log);
  /* an older coordinator: the stopped job's end on its own, acked, then no goodbye */
  child = start_agent();
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 5);
  CHECK(m != NULL);
  if (!m) return;
  accept_register(m->request_id, 0);
  foil__v1__worker_message__free_unpacked(m, NULL);
  char *argv[] = {"sleep", "30", NULL};
  assign(71, 171, argv, 2, 0, 0, 0, 0);
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_STARTED, 5);
  if (m) {
    ack(m->request_id);
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  kill(child, SIGTERM);
  Foil__V1__WorkerMessage *f = expect_finished(71, 5);
  CHECK(f && f->finished->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL);
  if (f) foil__v1__worker_message__free_unpacked(f, NULL);
  CHECK(exits_without_goodbye());
  /* refused ALREADY_EXISTS, then stopped: no goodbye */
  child = start_agent();
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 5);
  CHECK(m != NULL);
  if (!m) return;
  refuse_taken(m->request_id, 5000);
  foil__v1__worker_message__free_unpacked(m, NULL);
  usleep(200000);
  kill(child, SIGTERM);
  CHECK(exits_without_goodbye());
}

/* Another foil-worker process has this one's name (it was cut off, the
 * coordinator declared it lost and took the other): its heartbeat is told
 * to register, its Register refused ALREADY_EXISTS. It does not exit: it
 * stops the job it ran (reported NODE_FAIL, in its next Register), sends
 * nothing but a Register every retry_after_ms, starts no job assigned
 * meanwhile, and once a Register is accepted it is a worker again. */
static void test_name_taken(void) {
  name = "w3";
  child = start_agent();
  Foil__V1__WorkerMessage *m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 5);
  CHECK(m != NULL);
  if (!m) return;
  accept_register(m->request_id, 1);
  foil__v1__worker_message__free_unpacked(m, NULL);
  char *argv[] = {"sleep", "30", NULL};
  assign(8, 18, argv, 2, 0, 0, 0, 0);
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_STARTED, 5);
  pid_t pg = m ? m->started->pid : 0;
  if (m) {
    ack(m->request_id);
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  CHECK(pg > 0 && kill(-pg, 0) == 0);
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, 2);
  CHECK(m != NULL);
  if (!m) return;
  refuse(m->request_id, FOIL__V1__CODE__FAILED_PRECONDITION, "register first: worker \"w3\" is registered from "
         "w3/other, not from this connection");
  foil__v1__worker_message__free_unpacked(m, NULL);
  /* heartbeats it sent before it read that one are left unanswered */
  while ((m = next_from_agent(2)) && m->body_case != FOIL__V1__WORKER_MESSAGE__BODY_REGISTER)
    foil__v1__worker_message__free_unpacked(m, NULL);
  CHECK(m && m->register_->n_running == 1);
  if (!m) return;
  refuse_taken(m->request_id, 1000);
  foil__v1__worker_message__free_unpacked(m, NULL);
  double refused = log_mono();
  int registers = 0, others = 0, reported = 0;
  while (registers < 2 && log_mono() - refused < 8) {
    m = next_from_agent(0.5);
    if (!m) continue;
    if (m->body_case != FOIL__V1__WORKER_MESSAGE__BODY_REGISTER) {
      others++;
      foil__v1__worker_message__free_unpacked(m, NULL);
      continue;
    }
    double t = log_mono();
    CHECKF(t - refused > 0.8 && t - refused < 2.5, "registered again %.2f s after the refusal", t - refused);
    const Foil__V1__Register *r = m->register_;
    for (size_t i = 0; i < r->n_finished; i++)
      reported += r->finished[i]->job_id == 8 && r->finished[i]->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL &&
                  strstr(r->finished[i]->message, "another foil-worker") != NULL;
    if (++registers == 1) {
      CHECK(pg > 0 && kill(-pg, 0) != 0);  /* its job's group is gone (SIGTERM; within the 1 s grace) */
      refuse_taken(m->request_id, 1000);
      refused = log_mono();
      char *ok[] = {"true", NULL};
      assign(9, 19, ok, 1, 0, 0, 0, 0);  /* in flight from before: not started */
    } else {
      int st = 0;
      CHECK(waitpid(child, &st, WNOHANG) == 0);  /* refused twice, still running */
      accept_register(m->request_id, 1);
    }
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  CHECKF(registers == 2 && others == 0, "%d Registers, %d other messages while refused", registers, others);
  CHECK(reported == 2);
  /* accepted: a worker again (heartbeats), and job 9 never ran */
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, 2);
  CHECK(m != NULL);
  if (m) foil__v1__worker_message__free_unpacked(m, NULL);
  m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_STARTED, 0.5);
  CHECK(m == NULL);
  if (m) foil__v1__worker_message__free_unpacked(m, NULL);
  struct stat sb;
  char jd[1200];
  snprintf(jd, sizeof jd, "%s/root/jobs/9", tmp);
  CHECK(stat(jd, &sb) != 0);
  char p[1200], *log = NULL;
  snprintf(p, sizeof p, "%s/worker.log", tmp);
  if (foil_read_file(p, &log, NULL, NULL)) log = strdup("");
  CHECKF(log && strstr(log, "refuses worker name w3 to this process") && strstr(log, "ALREADY_EXISTS") &&
             strstr(log, "1 job(s) stopped here (the coordinator runs them elsewhere); registering again in 1.0 s") && strstr(log, "job 9: assigned while"),
         "%s", log);
  free(log);
  kill(child, SIGTERM);
  int st = -1;
  pid_t r = 0;
  for (double t0 = log_mono(); (r = waitpid(child, &st, WNOHANG)) == 0 && log_mono() - t0 < 10;) {
    Foil__V1__WorkerMessage *x = wait_for(-1, 0.1);  /* answering as a coordinator does */
    if (x) foil__v1__worker_message__free_unpacked(x, NULL);
  }
  CHECK(r == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (r != child) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
}

/* An Assign whose launch fails at once with a long message: its job
 * directory would be below a regular file. */
static int assign_unmakeable(uint64_t job, const char *file) {
  static char long_part[401];
  memset(long_part, 'd', 400);
  Foil__V1__Resources res = FOIL__V1__RESOURCES__INIT;
  res.ranks = 1;
  char *argv[] = {"true"};
  Foil__V1__JobSpec sp = FOIL__V1__JOB_SPEC__INIT;
  sp.kind = "command", sp.argv = argv, sp.n_argv = 1, sp.resources = &res;
  Foil__V1__Placement pl = FOIL__V1__PLACEMENT__INIT, *plp = &pl;
  pl.worker = (char *)name, pl.host = "localhost", pl.ranks = 1;
  char jd[1700];
  snprintf(jd, sizeof jd, "%s/%s/%llu", file, long_part, (unsigned long long)job);
  Foil__V1__Assign as = FOIL__V1__ASSIGN__INIT;
  as.job_id = job, as.token = job + 100000, as.spec = &sp, as.placement = &plp, as.n_placement = 1, as.head = 1;
  as.attempt = 1, as.job_dir = jd;
  Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  m.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN, m.assign = &as;
  return wire_send(router, route, &m.base, 0, NULL);
}

/* A report as this test made it: FAILED, exit 127, the launch error. */
static int many_report_ok(const Foil__V1__Finished *f, size_t n) {
  return f->job_id >= 1 && f->job_id <= n && f->token == f->job_id + 100000 &&
         f->state == FOIL__V1__JOB_STATE__JOB_FAILED && f->exit_code == 127 &&
         !strncmp(f->message, "cannot create the job directory ", 32) && strlen(f->message) > 400 &&
         strlen(f->message) <= OUTBOX_MAX_MESSAGE;
}

/* More job ends than one frame holds (20,000 launch failures of ~500-byte
 * messages, made while the coordinator does not answer): the agent still
 * registers, in a frame the coordinator takes (1 MiB, as here), the
 * register carrying the oldest reports whole and listing each other as
 * running by reference; every heartbeat lists each report not yet
 * acknowledged, so no job is taken for lost; the others follow one by one
 * and every job's report arrives. */
static void test_many_finished(void) {
  enum { N = 20000 };
  char file[1200];
  snprintf(file, sizeof file, "%s/not-a-directory", tmp);
  CHECK(foil_write_file_atomic(file, "x", 1, NULL) == FOIL_OK);
  name = "w2";
  child = start_agent();
  Foil__V1__WorkerMessage *m = wait_for(FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, 5);  /* not answered */
  CHECK(m != NULL);
  if (!m) return;
  foil__v1__worker_message__free_unpacked(m, NULL);
  int on = 1, off = 0;
  zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &on, sizeof on);  /* sends wait for room, none is dropped */
  int rc = FOIL_OK;
  for (uint64_t j = 1; j <= N && !rc; j++) rc = assign_unmakeable(j, file);
  CHECK(rc == FOIL_OK);
  static unsigned char done[N + 1], listed[N + 1];
  size_t ndone = 0, oversized = 0, heartbeats = 0, unlisted = 0, bad = 0, carried = 0, by_ref = 0;
  int registered = 0;
  double t0 = log_mono();
  while (ndone < N && log_mono() - t0 < (registered ? 60 : 30)) {
    zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 100) <= 0) continue;
    wire_msg w;
    rc = wire_recv(router, &w, 1, 1 << 20, 0, NULL);  /* the coordinator's limit (COORD_MAX_FRAME) */
    char peer[300];
    wire_msg_peer(&w, peer, sizeof peer);
    m = rc || !from_agent(peer) ? NULL
                                 : foil__v1__worker_message__unpack(NULL, zmq_msg_size(&w.body), zmq_msg_data(&w.body));
    wire_msg_close(&w);
    oversized += rc == FOIL_ENOMEM;
    if (!m) continue;
    if (m->body_case == FOIL__V1__WORKER_MESSAGE__BODY_REGISTER && !registered) {
      const Foil__V1__Register *r = m->register_;
      if (r->n_finished + r->n_running == N) {  /* every launch has failed: check the lot, then take it */
        memset(listed, 0, sizeof listed);
        for (size_t i = 0; i < r->n_finished; i++) {
          bad += !many_report_ok(r->finished[i], N) || listed[r->finished[i]->job_id]++;
          if (r->finished[i]->job_id <= N && !done[r->finished[i]->job_id]) done[r->finished[i]->job_id] = 1, ndone++;
        }
        for (size_t i = 0; i < r->n_running; i++) {
          const Foil__V1__AttemptRef *x = r->running[i];
          bad += x->job_id < 1 || x->job_id > N || x->token != x->job_id + 100000 || listed[x->job_id]++;
        }
        carried = r->n_finished, by_ref = r->n_running;
        accept_register(m->request_id, 1);
        registered = 1;
      }
    } else if (m->body_case == FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT && registered) {
      heartbeats++;
      memset(listed, 0, sizeof listed);
      const Foil__V1__Heartbeat *h = m->heartbeat;
      for (size_t i = 0; i < h->n_running; i++)
        if (h->running[i]->job_id >= 1 && h->running[i]->job_id <= N) listed[h->running[i]->job_id] = 1;
      for (size_t j = 1; j <= N; j++) unlisted += !done[j] && !listed[j];
      Foil__V1__HeartbeatAck h_ack = FOIL__V1__HEARTBEAT_ACK__INIT;
      reply(m->request_id, FOIL__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT, &h_ack);
    } else if (m->body_case == FOIL__V1__WORKER_MESSAGE__BODY_FINISHED && registered) {
      const Foil__V1__Finished *f = m->finished;
      bad += !many_report_ok(f, N);
      if (f->job_id >= 1 && f->job_id <= N && !done[f->job_id]) done[f->job_id] = 1, ndone++;
      ack(m->request_id);
    }
    foil__v1__worker_message__free_unpacked(m, NULL);
  }
  zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &off, sizeof off);
  CHECKF(registered, "never registered with %d job ends (%zu registers over 1 MiB)", N, oversized);
  CHECKF(ndone == N, "%zu of %d reports arrived in %.0f s", ndone, N, log_mono() - t0);
  CHECKF(carried > 1000 && by_ref == N - carried, "%zu reports in the register, %zu by reference", carried, by_ref);
  CHECKF(!bad && !oversized, "%zu bad, %zu registers over 1 MiB", bad, oversized);
  CHECKF(heartbeats > 0 && !unlisted, "%zu heartbeats left out %zu reports not yet acknowledged", heartbeats,
         unlisted);
  kill(child, SIGTERM);
  int st = -1;
  pid_t r = 0;
  for (t0 = log_mono(); (r = waitpid(child, &st, WNOHANG)) == 0 && log_mono() - t0 < 10;) {
    Foil__V1__WorkerMessage *x = wait_for(-1, 0.1);  /* answering as a coordinator does */
    if (x) foil__v1__worker_message__free_unpacked(x, NULL);
  }
  CHECK(r == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (r != child) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--progress-child")) return progress_child();
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0) self_exe[n] = 0;
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(tmp, sizeof tmp, "%s/agent", t ? t : "/tmp");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd)) return 1;
  mkdir(tmp, 0755);
  snprintf(endpoint, sizeof endpoint, "ipc://%s/coord.sock", tmp);
  child = start_agent();
  ctx = zmq_ctx_new();
  router = zmq_socket(ctx, ZMQ_ROUTER);
  int linger = 0;
  zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
  CHECK(zmq_bind(router, endpoint) == 0);
  RUN(test_bad_names);
  RUN(test_register);
  RUN(test_completed_and_resend);
  RUN(test_cancel);
  RUN(test_timeout_warn);
  RUN(test_launch_failure);
  RUN(test_kill_list);
  RUN(test_progress_forwarded);
  RUN(test_register_again);
  RUN(test_shutdown);
  RUN(test_goodbye);
  RUN(test_register_refused);
  RUN(test_name_taken);
  RUN(test_many_finished);
  if (kill(child, 0) == 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  zmq_close(router);
  zmq_ctx_term(ctx);
  TEST_EXIT();
}
