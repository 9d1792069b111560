/* agent.c — see agent.h. */
#define _GNU_SOURCE
#include "worker/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "common/auth.h"
#include "common/client.h"
#include "common/confine.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/wire.h"
#include "foil/v1/worker.pb-c.h"
#include "storage/ckpt.h"
#include "worker/agent/launch.h"
#include "worker/agent/outbox.h"
#include "worker/agent/pgroup.h"

#define MAX_FRAME (1u << 20)
#define TICK_MS 50
#define PROGRESS_EVERY_S 0.5
#define SENT_RING 512
#define GOODBYE_WAIT_MS 3000   /* the longest a shutdown waits for the Goodbye's Ack (as long as it
                                * waited for its last reports' Acks before there was a Goodbye) */

extern char **environ;

typedef struct attempt {
  uint64_t job_id, token;
  char prog_key[33];    /* 128 random bits in hex: only its processes know it ($FOIL_PROGRESS_KEY) */
  uint32_t n;
  int head;
  char *job_dir;
  pgroup *g;            /* NULL: a gang member's hold */
  uint64_t gpus;        /* bitmask of the GPU indices it holds */
  unsigned slots;
  double deadline;      /* wall clock, 0 none */
  double warn_at;       /* wall clock, 0 none */
  int warn_signal, warned;
  unsigned grace_s;
  int stopping, silent; /* silent: replaced, dropped without a report */
  Foil__V1__JobState stop_state;
  char stop_msg[256];
  /* the latest progress from rank 0 not yet forwarded */
  Foil__V1__Progress prog;
  char *prog_msg, *prog_metrics;
  int prog_pending;
  double prog_sent;     /* monotonic */
  struct attempt *next;
} attempt;

enum { REQ_REGISTER = 1, REQ_HEARTBEAT, REQ_STARTED, REQ_PROGRESS, REQ_FINISHED };

#define REGISTER_MS 1000u       /* Register, while unregistered, every second */
#define REGISTER_MAX_MS 30000u  /* backing off to this after refusals that may pass */

struct agent {
  agent_config cfg;
  char root[PATH_MAX];
  void *ctx, *dealer, *pull;
  void *mon;                 /* the dealer's handshake failures (common/auth.h) */
  auth_client keys;
  char progress_ep[256];
  attempt *attempts;
  outbox *ob;
  uint64_t next_id;
  int registered, lost, ever_replied;
  const char *refused_why;   /* the last handshake failure logged, and when */
  double refused_logged;
  unsigned register_ms;      /* the wait before the next Register while unregistered:
                              * 1 s, doubled (to REGISTER_MAX_MS) by each transient refusal */
  int fatal;                 /* a Register or handshake refused for good: its foil code (agent_run stops) */
  char fatal_msg[512];
  char route[AGENT_MAX_ROUTE + 1]; /* the dealer's routing id: NAME/INSTANCE, this process's own */
  int leaving;               /* shutting down (agent_run) */
  int takes_goodbye;         /* the last Registered said the coordinator takes Goodbye */
  int taken;                 /* the last Register was refused ALREADY_EXISTS: another live process has the
                              * name; no jobs run here until a Register is accepted */
  double taken_logged;       /* monotonic: when that was last logged */
  unsigned hb_ms, liveness;
  double next_beat, last_reply, last_register; /* monotonic */
  uint64_t gpus_used;
  struct {
    uint64_t id, job_id, token;
    int kind;
  } sent[SENT_RING];
  unsigned sent_pos;
  FILE *log;
};

#define LOG(a, level, ...) log_line((a)->log, level, "worker", __VA_ARGS__)

static const char *state_name(Foil__V1__JobState s) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&foil__v1__job_state__descriptor, s);
  return v ? v->name + 4 /* "JOB_" */ : "?";
}

/* ---- sending ------------------------------------------------------------------------------ */

static void remember(agent *a, uint64_t id, int kind, uint64_t job_id, uint64_t token) {
  unsigned i = a->sent_pos++ % SENT_RING;
  a->sent[i].id = id, a->sent[i].kind = kind, a->sent[i].job_id = job_id, a->sent[i].token = token;
}

static int lookup(const agent *a, uint64_t id, uint64_t *job_id, uint64_t *token) {
  for (unsigned i = 0; i < SENT_RING; i++)
    if (a->sent[i].id == id && id) {
      *job_id = a->sent[i].job_id, *token = a->sent[i].token;
      return a->sent[i].kind;
    }
  return 0;
}

/* Sends m (never blocks: a message the coordinator is not connected for is
 * dropped; what matters is resent). */
static void send_msg(agent *a, Foil__V1__WorkerMessage *m, int kind, uint64_t job_id, uint64_t token) {
  if (!m->request_id) m->request_id = ++a->next_id;
  remember(a, m->request_id, kind, job_id, token);
  wire_send(a->dealer, NULL, &m->base, ZMQ_DONTWAIT, NULL);
}

static size_t running_refs(agent *a, Foil__V1__AttemptRef *refs, Foil__V1__AttemptRef **ptrs, size_t cap) {
  size_t n = 0;
  for (attempt *t = a->attempts; t && n < cap; t = t->next) {
    if (t->silent) continue;
    foil__v1__attempt_ref__init(&refs[n]);
    refs[n].job_id = t->job_id, refs[n].token = t->token;
    ptrs[n] = &refs[n];
    n++;
  }
  return n;
}

static size_t count_attempts(const agent *a) {
  size_t n = 0;
  for (const attempt *t = a->attempts; t; t = t->next) n++;
  return n;
}

static void send_register(agent *a) {
  size_t cap = count_attempts(a) + 1;
  Foil__V1__AttemptRef *refs = calloc(cap, sizeof *refs);
  Foil__V1__AttemptRef **ptrs = calloc(cap, sizeof *ptrs);
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  r.name = (char *)a->cfg.name;
  r.host = (char *)a->cfg.host;
  r.slots = a->cfg.slots;
  r.gpus = a->cfg.gpus;
  r.version = (char *)AGENT_VERSION;
  if (refs && ptrs) r.n_running = running_refs(a, refs, ptrs, cap), r.running = ptrs;
  Foil__V1__WorkerMessage m = FOIL__V1__WORKER_MESSAGE__INIT;
  m.request_id = ++a->next_id;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_REGISTER;
  m.register_ = &r;
  /* the job ends not yet acknowledged: those that fit, the others by
   * reference (each then follows on its own, as every outbox entry does) */
  outbox_register_mem mem;
  size_t left_out = 0;
  foil_err err = {0};
  if (outbox_register(a->ob, m.request_id, &r, OUTBOX_REGISTER_BYTES, &mem, &left_out, &err))
    LOG(a, "ERROR", "registering without the job ends not yet acknowledged: %s", err.msg);
  if (left_out)
    LOG(a, "WARN", "registering with %zu job end(s) left out (too many to list): the coordinator will take those "
        "jobs for lost", left_out);
  send_msg(a, &m, REQ_REGISTER, 0, 0);
  a->last_register = log_mono();
  outbox_register_free(&mem);
  free(refs);
  free(ptrs);
}

static void send_heartbeat(agent *a) {
  /* attempts whose end is not yet acknowledged are still running to the coordinator (outbox.h) */
  size_t cap = count_attempts(a) + outbox_len(a->ob) + 1;
  Foil__V1__AttemptRef *refs = calloc(cap, sizeof *refs);
  Foil__V1__AttemptRef **ptrs = calloc(cap, sizeof *ptrs);
  Foil__V1__Heartbeat h = FOIL__V1__HEARTBEAT__INIT;
  if (refs && ptrs) {
    h.n_running = running_refs(a, refs, ptrs, cap);
    h.n_running += outbox_finished_refs(a->ob, refs + h.n_running, ptrs + h.n_running, cap - h.n_running);
    h.running = ptrs;
  }
  h.draining = 0;
  Foil__V1__WorkerMessage m = FOIL__V1__WORKER_MESSAGE__INIT;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT;
  m.heartbeat = &h;
  send_msg(a, &m, REQ_HEARTBEAT, 0, 0);
  free(refs);
  free(ptrs);
}

static void send_entry(agent *a, outbox_entry *e) {
  Foil__V1__WorkerMessage m = FOIL__V1__WORKER_MESSAGE__INIT;
  m.request_id = e->request_id;
  if (e->kind == OUTBOX_STARTED) {
    m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_STARTED;
    m.started = &e->started;
    send_msg(a, &m, REQ_STARTED, e->started.job_id, e->started.token);
  } else {
    m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_FINISHED;
    m.finished = &e->finished;
    send_msg(a, &m, REQ_FINISHED, e->finished.job_id, e->finished.token);
  }
}

/* ---- attempts ----------------------------------------------------------------------------- */

static attempt *find(agent *a, uint64_t job_id, uint64_t token) {
  for (attempt *t = a->attempts; t; t = t->next)
    if (t->job_id == job_id && (t->token == token || !token)) return t;
  return NULL;
}

static void attempt_free(agent *a, attempt *t) {
  a->gpus_used &= ~t->gpus;
  pgroup_destroy(&t->g);
  free(t->job_dir);
  free(t->prog_msg);
  free(t->prog_metrics);
  free(t);
}

static void remove_attempt(agent *a, attempt *t) {
  for (attempt **p = &a->attempts; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  attempt_free(a, t);
}

/* A line in the job's own log (best effort). */
__attribute__((format(printf, 3, 4))) static void job_log(agent *a, const char *job_dir, const char *fmt, ...) {
  char path[PATH_MAX + 8], msg[4096];
  snprintf(path, sizeof path, "%s/log", job_dir);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  FILE *f = fopen(path, "ae");
  if (!f) {
    LOG(a, "WARN", "cannot append to %s: %s", path, strerror(errno));
    return;
  }
  log_line(f, "INFO", "worker", "%s", msg);
  fclose(f);
}

/* 1 while job ends wait for the Goodbye (say_goodbye) instead of going on
 * their own: shutting down, registered with a coordinator that takes
 * Goodbye. On their own, each would free its slots before the coordinator
 * knew this worker leaves, and a pass could give its job back to it. */
static int holds_ends(const agent *a) { return a->leaving && a->registered && a->takes_goodbye; }

/* not_started: NODE_FAIL for an attempt none of whose processes ran (the
 * coordinator does not count it as a failure of the job). */
static void report_finished(agent *a, uint64_t job_id, uint64_t token, Foil__V1__JobState state, int exit_code,
                            int sig, const char *message, int not_started) {
  Foil__V1__Finished f = FOIL__V1__FINISHED__INIT;
  f.job_id = job_id, f.token = token, f.state = state, f.exit_code = exit_code, f.signal = sig;
  f.not_started = not_started != 0;
  f.message = (char *)(message ? message : "");
  f.end_time = log_now();
  uint64_t id = ++a->next_id;
  foil_err err = {0};
  if (outbox_add_finished(a->ob, &f, id, &err)) {
    LOG(a, "ERROR", "job %llu: cannot keep its end report: %s", (unsigned long long)job_id, err.msg);
    return;
  }
  if (a->registered && !holds_ends(a)) send_entry(a, outbox_at(a->ob, outbox_len(a->ob) - 1));
}

/* Begins stopping t's group: SIGTERM now, SIGKILL after grace. */
static void begin_stop(agent *a, attempt *t, Foil__V1__JobState state, unsigned grace_s, const char *why) {
  if (!t->stopping) {
    t->stop_state = state;
    foil_utf8_copy(t->stop_msg, sizeof t->stop_msg, why);  /* reported: cut at a character */
  }
  t->stopping = 1;
  if (t->g) pgroup_stop(t->g, grace_s ? grace_s : a->cfg.grace_s, log_mono());
}

/* The attempt was replaced (kill list, Error ABORTED): stop it and forget
 * it without a report. */
static void abort_attempt(agent *a, uint64_t job_id, uint64_t token, const char *why) {
  outbox_drop(a->ob, job_id, token);
  attempt *t = find(a, job_id, token);
  if (!t || !token) return;
  LOG(a, "WARN", "job %llu attempt %u (token %llu): %s: stopping it without a report",
      (unsigned long long)job_id, t->n, (unsigned long long)token, why);
  if (!t->g) {
    remove_attempt(a, t);
    return;
  }
  begin_stop(a, t, FOIL__V1__JOB_STATE__JOB_CANCELLED, t->grace_s, why);
  t->silent = 1;
}

static void flush_progress(agent *a, attempt *t);

static void finish_attempt(agent *a, attempt *t) {
  if (t->silent) {
    LOG(a, "INFO", "job %llu attempt %u (token %llu): stopped (replaced)", (unsigned long long)t->job_id, t->n,
        (unsigned long long)t->token);
    job_log(a, t->job_dir, "attempt %u (token %llu) on %s stopped: it was replaced", t->n,
            (unsigned long long)t->token, a->cfg.name);
    remove_attempt(a, t);
    return;
  }
  int code = 0, sig = 0;
  pgroup_status(t->g, &code, &sig);
  Foil__V1__JobState st;
  char msg[512];
  if (t->stopping) {
    st = t->stop_state;
    foil_utf8_copy(msg, sizeof msg, t->stop_msg);
  } else if (!sig && code == 0) {
    st = FOIL__V1__JOB_STATE__JOB_COMPLETED;
    snprintf(msg, sizeof msg, "exit code 0");
  } else {
    st = FOIL__V1__JOB_STATE__JOB_FAILED;
    if (sig) snprintf(msg, sizeof msg, "killed by signal %d (%s)", sig, strsignal(sig));
    else snprintf(msg, sizeof msg, "exit code %d", code);
  }
  LOG(a, "INFO", "job %llu attempt %u (token %llu) ended: %s (%s)", (unsigned long long)t->job_id, t->n,
      (unsigned long long)t->token, state_name(st), msg);
  job_log(a, t->job_dir, "attempt %u (token %llu) on %s ended: %s (%s)", t->n, (unsigned long long)t->token,
          a->cfg.name, state_name(st), msg);
  flush_progress(a, t); /* its last update goes before the end (a checkpoint it names starts a refresh) */
  report_finished(a, t->job_id, t->token, st, code, sig, msg, 0);
  remove_attempt(a, t);
}

/* ---- launching ---------------------------------------------------------------------------- */

static int have_srun(void) {
  const char *job = getenv("SLURM_JOB_ID"), *path = getenv("PATH");
  if (!job || !*job || !path) return 0;
  char buf[PATH_MAX];
  for (const char *p = path; *p;) {
    size_t len = strcspn(p, ":");
    if (len && len < sizeof buf - 6) {
      snprintf(buf, sizeof buf, "%.*s/srun", (int)len, p);
      if (access(buf, X_OK) == 0) return 1;
    }
    p += len;
    if (*p == ':') p++;
  }
  return 0;
}

/* Takes n free GPU indices into *mask; 0 when there are not enough. */
static int take_gpus(agent *a, unsigned n, uint64_t *mask) {
  *mask = 0;
  if (!n) return 1;
  unsigned got = 0;
  for (unsigned i = 0; i < a->cfg.gpus && i < AGENT_MAX_GPUS && got < n; i++)
    if (!(a->gpus_used >> i & 1)) *mask |= 1ull << i, got++;
  if (got < n) {
    *mask = 0;
    return 0;
  }
  a->gpus_used |= *mask;
  return 1;
}

/* Launches the head's attempt t. On error the caller reports FAILED. */
static int launch(agent *a, attempt *t, const Foil__V1__Assign *as, char *resume, size_t nresume, pid_t *pid,
                  foil_err *err) {
  const Foil__V1__JobSpec *sp = as->spec;
  resume[0] = 0;
  foil_err me = {0};
  if (foil_mkdirs(t->job_dir, &me))
    return foil_err_set(err, FOIL_EPERM, "cannot create the job directory %s: %s", t->job_dir, me.msg);
  int foil_run = sp && launch_is_foil_run(sp->kind), pretrain = foil_run && !strcmp(sp->kind, "pretrain");
  char spec_path[PATH_MAX + 16];
  snprintf(spec_path, sizeof spec_path, "%s/spec.json", t->job_dir);
  int rc;
  if (foil_run) {
    const char *js = sp->spec_json ? sp->spec_json : "";
    if (!*js) return foil_err_set(err, FOIL_EINVAL, "a %s job without a spec (spec_json is empty)", sp->kind);
    if ((rc = foil_write_file_atomic(spec_path, js, strlen(js), err))) return rc;
  }
  if (pretrain) {
    char ckdir[PATH_MAX + 16], *latest = NULL, *skipped = NULL;
    snprintf(ckdir, sizeof ckdir, "%s/ckpt", t->job_dir);
    if (ckpt_latest(ckdir, &latest, &skipped, NULL) == FOIL_OK && latest) snprintf(resume, nresume, "%s", latest);
    if (skipped && *skipped) job_log(a, t->job_dir, "checkpoints skipped: %s", skipped);
    free(latest);
    free(skipped);
  }
  launch_opts o = {.kind = sp ? sp->kind : "", .argv = sp ? sp->argv : NULL, .argc = sp ? sp->n_argv : 0,
                   .placement = as->placement, .nplacement = as->n_placement, .self_host = a->cfg.host,
                   .spec_path = spec_path, .spec_json = sp ? sp->spec_json : NULL, .root = a->root, .job_dir = t->job_dir, .foil_run = a->cfg.foil_run,
                   .mpirun = a->cfg.mpirun, .mpirun_args = a->cfg.mpirun_args, .slurm = have_srun()};
  char **argv = NULL, **envp = NULL;
  if ((rc = launch_argv(&o, &argv, err))) return rc;
  char set[10][PATH_MAX + 64];
  char *setv[11];
  int ns = 0;
  snprintf(set[ns++], sizeof set[0], "FOIL_ROOT=%s", a->root);
  snprintf(set[ns++], sizeof set[0], "FOIL_JOB_ID=%llu", (unsigned long long)t->job_id);
  snprintf(set[ns++], sizeof set[0], "FOIL_ATTEMPT=%u", t->n);
  snprintf(set[ns++], sizeof set[0], "FOIL_ATTEMPT_TOKEN=%llu", (unsigned long long)t->token);
  snprintf(set[ns++], sizeof set[0], "FOIL_RESTART_COUNT=%u", as->restart_count);
  snprintf(set[ns++], sizeof set[0], "FOIL_JOB_DIR=%s", t->job_dir);
  snprintf(set[ns++], sizeof set[0], "FOIL_PROGRESS=%s", a->progress_ep);
  snprintf(set[ns++], sizeof set[0], "FOIL_PROGRESS_KEY=%s", t->prog_key);
  if (t->gpus) {
    char list[AGENT_MAX_GPUS * 4] = {0};
    size_t used = 0;
    for (unsigned i = 0; i < AGENT_MAX_GPUS; i++)
      if (t->gpus >> i & 1) used += (size_t)snprintf(list + used, sizeof list - used, "%s%u", used ? "," : "", i);
    snprintf(set[ns++], sizeof set[0], "CUDA_VISIBLE_DEVICES=%s", list);
  }
  for (int i = 0; i < ns; i++) setv[i] = set[i];
  setv[ns] = NULL;
  if ((rc = launch_env(environ, setv, o.kind, &envp, err))) {
    launch_strv_free(&argv);
    return rc;
  }
  char cmd[4096];
  launch_describe(argv, cmd, sizeof cmd);
  char logpath[PATH_MAX + 8];
  snprintf(logpath, sizeof logpath, "%s/log", t->job_dir);
  int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = foil_err_set(err, FOIL_EPERM, "cannot open the job log %s: %s", logpath, strerror(errno));
  } else {
    FILE *f = fdopen(dup(fd), "a");
    if (f) {
      log_line(f, "INFO", "worker", "attempt %u (token %llu) on %s: %s", t->n, (unsigned long long)t->token,
               a->cfg.name, cmd);
      if (resume[0]) log_line(f, "INFO", "worker", "resuming from %s", resume);
      fclose(f);
    }
    /* where it was submitted from (as sbatch), else its job directory */
    const char *cwd = sp->workdir && sp->workdir[0] ? sp->workdir : t->job_dir;
    rc = pgroup_spawn(&t->g, argv, envp, cwd, fd, err);
    if (rc) job_log(a, t->job_dir, "attempt %u (token %llu) could not start: %s", t->n,
                    (unsigned long long)t->token, err->msg);
    close(fd);
  }
  if (!rc) {
    *pid = pgroup_id(t->g);
    LOG(a, "INFO", "job %llu attempt %u (token %llu) started as process group %ld: %s",
        (unsigned long long)t->job_id, t->n, (unsigned long long)t->token, (long)*pid, cmd);
  }
  launch_strv_free(&argv);
  launch_strv_free(&envp);
  return rc;
}

/* 128 bits from the kernel's generator as 32 hex digits into out (33
 * bytes); -1 (errno set) when there are none to be had. */
static int progress_key(char out[33]) {
  uint8_t b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t r = getrandom(b + got, sizeof b - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  for (size_t i = 0; i < sizeof b; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
  return 0;
}

static void handle_assign(agent *a, const Foil__V1__Assign *as, int shutting_down) {
  if (find(a, as->job_id, as->token)) return; /* a repeated assign */
  if (a->taken) {  /* sent before another process took the name: that one's now, or requeued */
    LOG(a, "WARN", "job %llu: assigned while another foil-worker has the name %s; not started",
        (unsigned long long)as->job_id, a->cfg.name);
    return;
  }
  if (shutting_down) {
    LOG(a, "WARN", "job %llu: assigned while shutting down; not started", (unsigned long long)as->job_id);
    if (as->head)  /* not the job's fault: NODE_FAIL, requeued, as the jobs it stops */
      report_finished(a, as->job_id, as->token, FOIL__V1__JOB_STATE__JOB_NODE_FAIL, 0, 0,
                      "the worker is shutting down: not started", 1);
    return;
  }
  attempt *t = calloc(1, sizeof *t);
  if (!t) {
    LOG(a, "ERROR", "out of memory for job %llu", (unsigned long long)as->job_id);
    return;
  }
  t->job_id = as->job_id, t->token = as->token, t->n = as->attempt, t->head = as->head;
  t->grace_s = as->grace_s;
  if (progress_key(t->prog_key)) {
    LOG(a, "ERROR", "job %llu: no random bytes for its progress key: %s", (unsigned long long)as->job_id,
        strerror(errno));
    free(t);
    return;
  }
  unsigned ranks_here = 0;
  for (size_t i = 0; i < as->n_placement; i++)
    if (as->placement[i]->worker && !strcmp(as->placement[i]->worker, a->cfg.name))
      ranks_here += as->placement[i]->ranks;
  if (!as->n_placement) ranks_here = 1;
  t->slots = ranks_here;
  const char *jd = as->job_dir && *as->job_dir ? as->job_dir : NULL;
  char buf[2 * PATH_MAX + 64];
  if (!jd) snprintf(buf, sizeof buf, "%s/jobs/%llu", a->root, (unsigned long long)as->job_id);
  else if (jd[0] != '/') snprintf(buf, sizeof buf, "%s/%s", a->root, jd);
  else snprintf(buf, sizeof buf, "%s", jd);
  t->job_dir = strdup(buf);
  t->next = a->attempts;
  a->attempts = t;
  if (!t->job_dir) {
    remove_attempt(a, t);
    return;
  }
  const Foil__V1__JobSpec *sp = as->spec;
  unsigned gpr = sp && sp->resources ? sp->resources->gpus_per_rank : 0;
  int gpus_ok = take_gpus(a, gpr * ranks_here, &t->gpus);
  if (!t->head) {
    LOG(a, "INFO", "job %llu attempt %u (token %llu): holding %u slot(s)%s for the gang led by %s",
        (unsigned long long)t->job_id, t->n, (unsigned long long)t->token, ranks_here,
        gpus_ok ? "" : " (not enough free GPUs)",
        as->n_placement ? as->placement[0]->worker : "?");
    return;
  }
  double now = log_now();
  foil_err err = {0};
  char resume[PATH_MAX];
  pid_t pid = 0;
  int rc = gpus_ok ? launch(a, t, as, resume, sizeof resume, &pid, &err)
                   : foil_err_set(&err, FOIL_ENOMEM, "needs %u GPU(s) on %s and fewer are free", gpr * ranks_here,
                                  a->cfg.name);
  if (rc) {
    LOG(a, "ERROR", "job %llu attempt %u (token %llu) failed to launch: %s", (unsigned long long)t->job_id, t->n,
        (unsigned long long)t->token, err.msg);
    report_finished(a, t->job_id, t->token, FOIL__V1__JOB_STATE__JOB_FAILED, 127, 0, err.msg, 0);
    remove_attempt(a, t);
    return;
  }
  Foil__V1__Started s = FOIL__V1__STARTED__INIT;
  s.job_id = t->job_id, s.token = t->token, s.pid = pid, s.resume_from = resume;
  uint64_t id = ++a->next_id;
  if (!outbox_add_started(a->ob, &s, id, &err) && a->registered)
    send_entry(a, outbox_at(a->ob, outbox_len(a->ob) - 1));
  if (as->deadline > 0) {
    t->deadline = as->deadline;
    if (sp && sp->warn_signal > 0) {
      t->warn_signal = sp->warn_signal;
      t->warn_at = as->deadline - sp->warn_before_s;
    }
    LOG(a, "INFO", "job %llu: time limit in %.0f s", (unsigned long long)t->job_id, as->deadline - now);
  }
}

static void handle_signal(agent *a, const Foil__V1__Signal *sg) {
  attempt *t = find(a, sg->job_id, sg->token);
  if (!t || t->silent) {
    LOG(a, "WARN", "signal for job %llu (token %llu), which does not run here", (unsigned long long)sg->job_id,
        (unsigned long long)sg->token);
    return;
  }
  if (!t->g) { /* a gang member's hold */
    if (sg->stop) remove_attempt(a, t);
    return;
  }
  if (sg->stop) {
    Foil__V1__JobState st = sg->state ? sg->state : FOIL__V1__JOB_STATE__JOB_CANCELLED;
    const char *why = st == FOIL__V1__JOB_STATE__JOB_TIMEOUT ? "time limit reached" : "cancelled";
    LOG(a, "INFO", "job %llu attempt %u: stopping (%s; SIGTERM, SIGKILL after %u s)", (unsigned long long)t->job_id,
        t->n, why, sg->grace_s ? sg->grace_s : a->cfg.grace_s);
    job_log(a, t->job_dir, "attempt %u: %s: SIGTERM to the job, SIGKILL after %u s", t->n, why,
            sg->grace_s ? sg->grace_s : a->cfg.grace_s);
    begin_stop(a, t, st, sg->grace_s ? sg->grace_s : t->grace_s, why);
  } else if (sg->signal > 0) {
    LOG(a, "INFO", "job %llu attempt %u: signal %d", (unsigned long long)t->job_id, t->n, sg->signal);
    pgroup_signal(t->g, sg->signal);
  }
}

static void handle_kill_list(agent *a, Foil__V1__AttemptRef **refs, size_t n) {
  for (size_t i = 0; i < n; i++) abort_attempt(a, refs[i]->job_id, refs[i]->token, "the coordinator replaced it");
}

/* ---- receiving ---------------------------------------------------------------------------- */

/* Stops the agent (agent_run returns code) with msg, as a final refusal. */
__attribute__((format(printf, 3, 4))) static void stop_fatal(agent *a, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->fatal_msg, sizeof a->fatal_msg, fmt, ap);
  va_end(ap);
  foil_utf8_cut(a->fatal_msg);
  LOG(a, "ERROR", "%s; stopping", a->fatal_msg);
  a->fatal = code;
}

/* 1 for a refusal of a Register that no resend can change: the name, the
 * key or the resources this worker was started with (INVALID_ARGUMENT,
 * PERMISSION_DENIED, UNAUTHENTICATED, NOT_FOUND); the others (UNAVAILABLE,
 * RESOURCE_EXHAUSTED, INTERNAL, ...) may pass. ALREADY_EXISTS (the name is
 * another live process's) has its own handling: register_taken. */
static int refusal_is_final(int code) {
  return code == FOIL__V1__CODE__INVALID_ARGUMENT || code == FOIL__V1__CODE__PERMISSION_DENIED ||
         code == FOIL__V1__CODE__UNAUTHENTICATED || code == FOIL__V1__CODE__NOT_FOUND;
}

/* The coordinator refused a Register (code: the wire's). A final refusal
 * stops the agent (agent_run returns it); any other is retried, waiting
 * twice as long each time, up to REGISTER_MAX_MS — or, while jobs run here,
 * half the coordinator's liveness window (each Register it answers keeps
 * this worker from being declared DOWN, which would requeue those jobs). */
static void register_refused(agent *a, int code, const char *msg, double now) {
  int err = client_code_to_err(code);
  if (refusal_is_final(code))
    return stop_fatal(a, err ? err : FOIL_EINTERNAL, "the coordinator at %.200s refuses to register worker %s: %s: "
                      "%.200s", a->cfg.coordinator, a->cfg.name, foil_err_name(err), msg);
  unsigned most = REGISTER_MAX_MS;
  if (a->attempts) {
    unsigned half = (unsigned)((uint64_t)a->hb_ms * a->liveness / 2);
    most = half < REGISTER_MS ? REGISTER_MS : half < most ? half : most;
  }
  a->register_ms = a->register_ms >= most / 2 ? most : 2 * a->register_ms;
  LOG(a, "WARN", "the coordinator refused to register worker %s: %s: %s; registering again in %.0f s", a->cfg.name,
      foil_err_name(err), msg, a->register_ms / 1e3);
  if (!a->registered) a->next_beat = now + a->register_ms / 1e3;
}

/* The coordinator refused a Register ALREADY_EXISTS: another foil-worker
 * process of this name is live there (worker.proto). Not final: that one
 * may be this worker's predecessor, crashed or cut off, which the
 * coordinator stops counting as live after its liveness window. Until a
 * Register is accepted this process runs nothing: its jobs are stopped as
 * on a shutdown (the coordinator has requeued them or will: they are not
 * this process's any more) and Assigns are ignored; it registers again
 * after retry_ms (what the coordinator said, else a liveness window),
 * never taking the name over. Logged once a minute at most. */
static void register_taken(agent *a, const char *msg, unsigned retry_ms, double now) {
  unsigned wait = retry_ms ? retry_ms : a->hb_ms * a->liveness;
  if (wait < REGISTER_MS / 4) wait = REGISTER_MS / 4;
  if (wait > REGISTER_MAX_MS) wait = REGISTER_MAX_MS;
  size_t n = 0;
  for (attempt *t = a->attempts, *next; t; t = next) {
    next = t->next;
    if (!t->g) {  /* a gang member's hold */
      remove_attempt(a, t);
      continue;
    }
    if (t->stopping) continue;
    char why[256];
    snprintf(why, sizeof why, "worker %s: another foil-worker of that name has it", a->cfg.name);
    foil_utf8_cut(why);
    job_log(a, t->job_dir, "attempt %u: %s: SIGTERM to the job", t->n, why);
    begin_stop(a, t, FOIL__V1__JOB_STATE__JOB_NODE_FAIL, t->grace_s, why);
    n++;
  }
  if (!a->taken || n || now - a->taken_logged >= 60) {
    char stopped[96] = "";
    if (n) snprintf(stopped, sizeof stopped, "; %zu job(s) stopped here (the coordinator runs them elsewhere)", n);
    LOG(a, "ERROR", "the coordinator at %s refuses worker name %s to this process (%s) while another foil-worker "
        "has it: ALREADY_EXISTS: %s; this process runs no jobs until it is accepted%s; registering again in %.1f s%s",
        a->cfg.coordinator, a->cfg.name, a->route, msg, stopped, wait / 1e3,
        a->taken ? " (said once a minute)" : "");
    a->taken_logged = now;
  }
  a->taken = 1;
  a->registered = 0;
  a->register_ms = wait;
  a->next_beat = now + wait / 1e3;
}

static void on_coordinator(agent *a, int shutting_down) {
  for (;;) {
    wire_msg w;
    foil_err err = {0};
    int rc = wire_recv(a->dealer, &w, 0, MAX_FRAME, ZMQ_DONTWAIT, &err);
    if (rc == FOIL_EUNAVAIL) {
      wire_msg_close(&w);
      return;
    }
    Foil__V1__CoordinatorMessage *m =
        rc ? NULL : foil__v1__coordinator_message__unpack(NULL, zmq_msg_size(&w.body), zmq_msg_data(&w.body));
    wire_msg_close(&w);
    if (!m) {
      LOG(a, "WARN", "a message from the coordinator that does not parse%s%s", rc ? ": " : "", rc ? err.msg : "");
      continue;
    }
    double now = log_mono();
    a->last_reply = now;
    a->ever_replied = 1;
    if (a->lost) {
      LOG(a, "INFO", "the coordinator at %s answers again: registering", a->cfg.coordinator);
      a->lost = 0;
      a->registered = 0;
      if (m->body_case != FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED) send_register(a);
    }
    uint64_t job_id = 0, token = 0;
    switch (m->body_case) {
      case FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR: {
        int kind = lookup(a, m->request_id, &job_id, &token);
        int code = m->error ? (int)m->error->code : 0;
        const char *msg = m->error && m->error->message ? m->error->message : "";
        if (code == FOIL__V1__CODE__FAILED_PRECONDITION) {
          if (a->registered || now - a->last_register > 0.2) {
            LOG(a, "INFO", "the coordinator asks to register again (%s)", msg);
            a->registered = 0;
            send_register(a);
          }
        } else if (code == FOIL__V1__CODE__ABORTED && token) {
          abort_attempt(a, job_id, token, msg);
        } else if (kind == REQ_REGISTER && code == FOIL__V1__CODE__ALREADY_EXISTS) {
          register_taken(a, msg, m->retry_after_ms, now);
        } else if (kind == REQ_REGISTER) {
          register_refused(a, code, msg, now);
        } else {
          LOG(a, "WARN", "the coordinator refused request %llu: %s: %s", (unsigned long long)m->request_id,
              foil_err_name(-code), msg);
          /* resending what it refuses cannot help, except when unavailable */
          if (code != FOIL__V1__CODE__UNAVAILABLE) outbox_ack(a->ob, m->request_id);
        }
        break;
      }
      case FOIL__V1__COORDINATOR_MESSAGE__BODY_ACK:
        outbox_ack(a->ob, m->request_id);
        break;
      case FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED: {
        const Foil__V1__Registered *r = m->registered;
        a->hb_ms = r && r->heartbeat_ms ? r->heartbeat_ms : 1000;
        a->liveness = r && r->liveness ? r->liveness : 3;
        if (!a->registered)
          LOG(a, "INFO", "registered with the coordinator at %s as %s (%u slots, %u GPUs; heartbeat %u ms)%s",
              a->cfg.coordinator, a->route, a->cfg.slots, a->cfg.gpus, a->hb_ms,
              a->taken ? "; the other foil-worker of this name is gone" : "");
        a->registered = 1;
        a->takes_goodbye = r && r->goodbye;
        a->taken = 0;
        a->register_ms = REGISTER_MS;
        outbox_ack_register(a->ob, m->request_id);
        if (r) handle_kill_list(a, r->kill, r->n_kill);
        a->next_beat = now; /* heartbeat and resend the outbox now */
        break;
      }
      case FOIL__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT:
        if (m->heartbeat) handle_kill_list(a, m->heartbeat->kill, m->heartbeat->n_kill);
        break;
      case FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN:
        if (m->assign) handle_assign(a, m->assign, shutting_down);
        break;
      case FOIL__V1__COORDINATOR_MESSAGE__BODY_SIGNAL:
        if (m->signal) handle_signal(a, m->signal);
        break;
      case FOIL__V1__COORDINATOR_MESSAGE__BODY_RELEASE: {
        attempt *t = m->release ? find(a, m->release->job_id, m->release->token) : NULL;
        if (t && !t->g) {
          LOG(a, "INFO", "job %llu attempt %u: slots released", (unsigned long long)t->job_id, t->n);
          remove_attempt(a, t);
        }
        break;
      }
      default:
        break;
    }
    foil__v1__coordinator_message__free_unpacked(m, NULL);
  }
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

/* 1 when key is t's progress key; compares every byte whatever differs. */
static int key_is(const attempt *t, const char *key) {
  if (!key || strlen(key) != sizeof t->prog_key - 1) return 0;
  unsigned diff = 0;
  for (size_t i = 0; i < sizeof t->prog_key - 1; i++) diff |= (unsigned)(key[i] ^ t->prog_key[i]);
  return diff == 0;
}

/* Progress from the jobs (PULL, loopback): an update counts only with its
 * attempt's token and progress key, so no other local process can write
 * a job's progress (and through it, start the loop's refreshes). */
static void on_progress(agent *a) {
  for (;;) {
    wire_msg w;
    int rc = wire_recv(a->pull, &w, 0, 64 * 1024, ZMQ_DONTWAIT, NULL);
    if (rc == FOIL_EUNAVAIL) {
      wire_msg_close(&w);
      return;
    }
    Foil__V1__ProgressUpdate *u =
        rc ? NULL : foil__v1__progress_update__unpack(NULL, zmq_msg_size(&w.body), zmq_msg_data(&w.body));
    wire_msg_close(&w);
    if (!u) continue;
    attempt *t = u->token ? find(a, u->job_id, u->token) : NULL;
    if (t && !t->silent && u->progress && key_is(t, u->key)) {
      free(t->prog_msg);
      free(t->prog_metrics);
      t->prog_msg = dup_or_empty(u->progress->message);
      t->prog_metrics = dup_or_empty(u->progress->metrics_json);
      foil__v1__progress__init(&t->prog);
      t->prog.value = u->progress->value;
      t->prog.total = u->progress->total;
      t->prog.time = log_now();
      t->prog.message = t->prog_msg ? t->prog_msg : (char *)"";
      t->prog.metrics_json = t->prog_metrics ? t->prog_metrics : (char *)"";
      t->prog_pending = 1;
    }
    foil__v1__progress_update__free_unpacked(u, NULL);
  }
}

static void forward_progress(agent *a, double now) {
  if (!a->registered) return;
  for (attempt *t = a->attempts; t; t = t->next) {
    if (!t->prog_pending || now - t->prog_sent < PROGRESS_EVERY_S) continue;
    Foil__V1__ProgressReport r = FOIL__V1__PROGRESS_REPORT__INIT;
    r.job_id = t->job_id, r.token = t->token, r.progress = &t->prog;
    Foil__V1__WorkerMessage m = FOIL__V1__WORKER_MESSAGE__INIT;
    m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_PROGRESS;
    m.progress = &r;
    send_msg(a, &m, REQ_PROGRESS, t->job_id, t->token);
    t->prog_pending = 0;
    t->prog_sent = now;
  }
}

/* Forwards t's latest update now, throttle or not: what rank 0 sent just
 * before its process ended. */
static void flush_progress(agent *a, attempt *t) {
  on_progress(a);
  if (t->prog_pending) {
    t->prog_sent = -1e30;
    forward_progress(a, log_mono());
  }
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void reap_children(agent *a) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    for (attempt *t = a->attempts; t; t = t->next)
      if (t->g && pgroup_id(t->g) == pid) pgroup_reaped(t->g, st);
  }
}

static void tick_attempts(agent *a) {
  reap_children(a);
  double wall = log_now(), mono = log_mono();
  for (attempt *t = a->attempts, *next; t; t = next) {
    next = t->next;
    if (!t->g) continue;
    if (t->warn_signal && !t->warned && !t->stopping && wall >= t->warn_at) {
      t->warned = 1;
      LOG(a, "INFO", "job %llu: signal %d, %.0f s before its time limit", (unsigned long long)t->job_id,
          t->warn_signal, t->deadline - wall);
      pgroup_signal(t->g, t->warn_signal);
    }
    if (t->deadline > 0 && !t->stopping && wall >= t->deadline) {
      LOG(a, "INFO", "job %llu attempt %u: time limit reached: SIGTERM, SIGKILL after %u s",
          (unsigned long long)t->job_id, t->n, t->grace_s ? t->grace_s : a->cfg.grace_s);
      job_log(a, t->job_dir, "attempt %u: time limit reached: SIGTERM to the job, SIGKILL after %u s", t->n,
              t->grace_s ? t->grace_s : a->cfg.grace_s);
      begin_stop(a, t, FOIL__V1__JOB_STATE__JOB_TIMEOUT, t->grace_s, "time limit reached");
    }
    if (pgroup_tick(t->g, mono)) finish_attempt(a, t);
  }
}

/* The dealer's failed handshakes (common/auth.h auth_handshake_count).
 * The coordinator's ZAP handler refusing this worker's key, or a
 * mechanism mismatch (no keys here, CURVE there), is final as a Register
 * refused PERMISSION_DENIED is: it stops the agent with UNAUTHENTICATED
 * (foil-worker exits 12). Not retried, although the coordinator rereads
 * its allow-list on SIGHUP: libzmq never connects this socket again after
 * such a refusal, so staying up would only keep jobs running that the
 * coordinator is about to requeue elsewhere. A key refused only because it
 * was being added is the one transient case; the operator (or systemd's
 * Restart=on-failure) starts the worker again once it is in. A handshake
 * the other side hangs up on (AUTH_HS_CLOSED) is what a wrong
 * --server-key gives, but also a TCP proxy or ssh tunnel whose coordinator
 * is down, or one restarting: logged (once a minute at most, as other
 * failures), never final. Cost: a non-blocking read of the monitor socket
 * per loop turn. */
static void check_handshake(agent *a, double now) {
  unsigned n[AUTH_HS_KINDS] = {0};
  const char *why = auth_handshake_count(a->mon, &a->keys, n);
  if (!why || a->fatal) return;
  if (n[AUTH_HS_REFUSED])
    return stop_fatal(a, FOIL_EUNAUTH, "the coordinator at %.200s refused this worker's key in the CURVE handshake: "
                      "its allow-list (the directory of foil-coordinator --allow-keys) has no NAME.key with "
                      "public-key %s (worker %s); put this worker's NAME.key there, send the coordinator "
                      "SIGHUP, then start this worker again", a->cfg.coordinator, a->keys.pub, a->cfg.name);
  if (n[AUTH_HS_PROTOCOL])
    return stop_fatal(a, FOIL_EUNAUTH, "cannot talk to the coordinator at %.200s: %s", a->cfg.coordinator, why);
  if (why != a->refused_why || now - a->refused_logged > 60) {  /* once a minute at most */
    LOG(a, "ERROR", "cannot talk to the coordinator at %s: %s", a->cfg.coordinator, why);
    a->refused_why = why, a->refused_logged = now;
  }
}

static void beat(agent *a, double now) {
  unsigned interval = a->registered ? a->hb_ms : a->register_ms;
  /* refused as a second process of the name, it waits on purpose: not lost */
  if (a->ever_replied && !a->lost && !a->taken && now - a->last_reply > (double)a->liveness * a->hb_ms / 1e3) {
    LOG(a, "WARN", "no reply from the coordinator at %s for %.1f s: keeping %zu job(s) running, trying again",
        a->cfg.coordinator, now - a->last_reply, count_attempts(a));
    a->lost = 1;
    a->registered = 0;
  }
  if (!a->registered) {
    send_register(a);
  } else {
    send_heartbeat(a);
    for (size_t i = 0; i < outbox_len(a->ob); i++) {
      outbox_entry *e = outbox_at(a->ob, i);
      if (!holds_ends(a) || e->kind != OUTBOX_FINISHED) send_entry(a, e);
    }
  }
  a->next_beat = now + interval / 1e3;
}

/* After a clean shutdown: a Goodbye (worker.proto), so the coordinator
 * takes this worker as gone now and frees its name for the next process,
 * instead of refusing that one ALREADY_EXISTS until this one's liveness
 * window ends. It carries the job ends not yet acknowledged (held back
 * while leaving, so that the coordinator frees their slots and marks this
 * worker DOWN in one step and gives none of those jobs back to it), as
 * many as fit in a frame (outbox_register's rule; the others it takes for
 * lost: NODE_FAIL). Only while registered (otherwise the name is not this
 * process's there and it would be ignored) with a coordinator that takes
 * it (an older one gets the ends on their own, as before: holds_ends).
 * Best-effort and bounded: sent without blocking (ZMQ_IMMEDIATE: with no
 * connection it fails at once), then its Ack awaited at most
 * GOODBYE_WAIT_MS — the dealer's linger is 0,
 * so a goodbye still queued at close is lost, and the Ack also says the
 * coordinator acted on it before a new process of the name registers.
 * Anything else received meanwhile is dropped: no more work is taken.
 * Cost: one message of up to ~1 MiB, at most 3 s of polling. */
static void say_goodbye(agent *a) {
  if (!a->registered || !a->takes_goodbye || a->fatal) return;
  Foil__V1__Goodbye g = FOIL__V1__GOODBYE__INIT;
  Foil__V1__WorkerMessage m = FOIL__V1__WORKER_MESSAGE__INIT;
  m.request_id = ++a->next_id;
  m.body_case = FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE, m.goodbye = &g;
  /* the ends a Register would carry: outbox_register fills a Register's
   * finished (the fields it leaves out: running attempts, refs, which a
   * Goodbye does not need: the coordinator NODE_FAILs what it still runs) */
  size_t ends = 0;
  for (size_t i = 0; i < outbox_len(a->ob); i++) ends += outbox_at(a->ob, i)->kind == OUTBOX_FINISHED;
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  outbox_register_mem mem;
  size_t left_out = 0;
  foil_err err = {0};
  if (outbox_register(a->ob, m.request_id, &r, OUTBOX_REGISTER_BYTES, &mem, &left_out, &err))
    LOG(a, "ERROR", "the goodbye goes without the job ends not yet acknowledged: %s", err.msg);
  g.finished = r.finished, g.n_finished = r.n_finished;
  if (g.n_finished < ends)
    LOG(a, "WARN", "%zu job end(s) do not fit in the goodbye: the coordinator takes those jobs for lost (NODE_FAIL)",
        ends - g.n_finished);
  int sent = wire_send(a->dealer, NULL, &m.base, ZMQ_DONTWAIT, &err) == FOIL_OK;
  outbox_register_free(&mem);
  if (!sent) {
    LOG(a, "WARN", "goodbye to the coordinator at %s not sent (%s): it frees the name %s once this worker has "
        "been silent for its liveness window", a->cfg.coordinator, err.msg, a->cfg.name);
    return;
  }
  double until = log_mono() + GOODBYE_WAIT_MS / 1e3;
  int acked = 0;
  for (double left; !acked && (left = until - log_mono()) > 0;) {
    zmq_pollitem_t it = {.socket = a->dealer, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, (long)(left * 1e3) + 1) <= 0) continue;  /* timed out, or a signal: the loop decides */
    for (;;) {
      wire_msg w;
      int rc = wire_recv(a->dealer, &w, 0, MAX_FRAME, ZMQ_DONTWAIT, NULL);
      if (rc == FOIL_EUNAVAIL) {
        wire_msg_close(&w);
        break;
      }
      Foil__V1__CoordinatorMessage *x =
          rc ? NULL : foil__v1__coordinator_message__unpack(NULL, zmq_msg_size(&w.body), zmq_msg_data(&w.body));
      wire_msg_close(&w);
      if (x && x->request_id == m.request_id) acked = 1;
      if (x) foil__v1__coordinator_message__free_unpacked(x, NULL);
    }
  }
  if (acked) LOG(a, "INFO", "said goodbye to the coordinator at %s (with %zu job end(s)): the name %s is free",
                 a->cfg.coordinator, g.n_finished, a->cfg.name);
  else LOG(a, "WARN", "no answer to the goodbye from the coordinator at %s in %.1f s: it frees the name %s once "
           "this worker has been silent for its liveness window", a->cfg.coordinator, GOODBYE_WAIT_MS / 1e3,
           a->cfg.name);
}

int agent_run(agent *a, volatile sig_atomic_t *stop, foil_err *err) {
  LOG(a, "INFO", "%s starting: %s (this process: %s) at %s, %u slots, %u GPUs, coordinator %s, root %s, progress %s",
      AGENT_VERSION, a->cfg.name, a->route, a->cfg.host, a->cfg.slots, a->cfg.gpus, a->cfg.coordinator, a->root,
      a->progress_ep);
  a->last_reply = log_mono();
  a->next_beat = 0;
  int shutting = 0;
  double flush_until = 0, hard_until = 0;
  for (;;) {
    double now = log_mono();
    if ((*stop || a->fatal) && !shutting) {
      shutting = 1;
      a->leaving = 1;  /* job ends now wait for the goodbye (holds_ends) */
      unsigned max_grace = a->cfg.grace_s;
      LOG(a, "INFO", "shutting down: stopping %zu job(s)", count_attempts(a));
      for (attempt *t = a->attempts, *next; t; t = next) {
        next = t->next;
        if (!t->g) {
          remove_attempt(a, t);
          continue;
        }
        char why[256];
        snprintf(why, sizeof why, "worker %s shut down", a->cfg.name);
        foil_utf8_cut(why);
        job_log(a, t->job_dir, "attempt %u: %s: SIGTERM to the job", t->n, why);
        /* reported as a lost node: the coordinator requeues it (max_failures) */
        begin_stop(a, t, FOIL__V1__JOB_STATE__JOB_NODE_FAIL, t->grace_s, why);
        if (t->grace_s > max_grace) max_grace = t->grace_s;
      }
      hard_until = now + max_grace + 10;
    }
    if (shutting) {
      if (!a->attempts && !flush_until) flush_until = now + 3;
      /* refused for good: nobody takes the reports, do not wait to flush them;
       * held: they go in the goodbye */
      if (!a->attempts && (a->fatal || holds_ends(a) || !outbox_len(a->ob) || now >= flush_until)) break;
      if (now >= hard_until) {
        LOG(a, "WARN", "shutting down with %zu job(s) not yet gone and %zu report(s) not acknowledged",
            count_attempts(a), outbox_len(a->ob));
        break;
      }
    }
    check_handshake(a, now);
    if (now >= a->next_beat && !a->fatal) beat(a, now);
    zmq_pollitem_t items[2] = {{.socket = a->dealer, .events = ZMQ_POLLIN},
                               {.socket = a->pull, .events = ZMQ_POLLIN}};
    long wait = (long)((a->next_beat - now) * 1e3);
    if (wait > TICK_MS) wait = TICK_MS;
    if (wait < 0) wait = 0;
    int n = zmq_poll(items, 2, wait);
    if (n < 0 && errno != EINTR) {
      LOG(a, "ERROR", "poll: %s", zmq_strerror(errno));
      usleep(TICK_MS * 1000);
    }
    if (n > 0 && (items[0].revents & ZMQ_POLLIN)) on_coordinator(a, shutting);
    if (n > 0 && (items[1].revents & ZMQ_POLLIN)) on_progress(a);
    tick_attempts(a);
    forward_progress(a, log_mono());
  }
  say_goodbye(a);
  LOG(a, "INFO", "stopped");
  if (a->fatal) return foil_err_set(err, a->fatal, "%s", a->fatal_msg);
  return FOIL_OK;
}

/* ---- setup -------------------------------------------------------------------------------- */

const char *agent_progress_endpoint(const agent *a) { return a->progress_ep; }

const char *agent_route(const agent *a) { return a->route; }

/* 64 bits for this process's instance: the kernel's random bytes, else
 * the clock and pid mixed (splitmix64). */
static uint64_t instance_bits(void) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t z = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
  z += 0x9e3779b97f4a7c15u;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

int agent_new(agent **out, const agent_config *cfg, foil_err *err) {
  *out = NULL;
  /* the coordinator takes only plain names (they go into placements "w:r,w:r") */
  if (!cfg->name || !confine_name_ok(cfg->name))
    return foil_err_set(err, FOIL_EINVAL, "worker name \"%.200s\" must be 1 to %d of letters, digits, '.', '_' "
                        "and '-' (not \".\" or \"..\"): --name NAME", cfg->name ? cfg->name : "", CONFINE_MAX_NAME);
  if (!cfg->host || !*cfg->host) return foil_err_set(err, FOIL_EINVAL, "a host name is required");
  if (!cfg->coordinator || (strncmp(cfg->coordinator, "tcp://", 6) && strncmp(cfg->coordinator, "ipc://", 6)))
    return foil_err_set(err, FOIL_EINVAL, "coordinator address %s must start with tcp:// or ipc://",
                        cfg->coordinator ? cfg->coordinator : "(none)");
  if (cfg->gpus > AGENT_MAX_GPUS) return foil_err_set(err, FOIL_EINVAL, "at most %d GPUs per worker", AGENT_MAX_GPUS);
  if (!cfg->slots) return foil_err_set(err, FOIL_EINVAL, "--slots must be at least 1");
  agent *a = calloc(1, sizeof *a);
  if (!a) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  a->cfg = *cfg;
  a->log = cfg->log ? cfg->log : stderr;
  /* its own route: a second process of the same name never shares it (worker.proto) */
  snprintf(a->route, sizeof a->route, "%s/%016llx", cfg->name, (unsigned long long)instance_bits());
  a->hb_ms = 1000;
  a->register_ms = REGISTER_MS;
  a->liveness = 3;
  int rc = FOIL_OK;
  const char *root = cfg->root && *cfg->root ? cfg->root : "./foil-data";
  foil_err me = {0};
  if (foil_mkdirs(root, &me))
    rc = foil_err_set(err, FOIL_EPERM, "cannot create the data root %s: %s", root, me.msg);
  else if (!realpath(root, a->root))
    rc = foil_err_set(err, FOIL_EPERM, "cannot create the data root %s: %s", root, strerror(errno));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  a->next_id = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
  if (!rc) rc = auth_client_load(&a->keys, cfg->key, cfg->server_key, err);
  if (!rc && a->keys.on) auth_protect_process();
  if (!rc) rc = outbox_new(&a->ob, err);
  if (!rc && !(a->ctx = zmq_ctx_new())) rc = foil_err_set(err, FOIL_EINTERNAL, "zmq_ctx_new failed");
  if (!rc) {
    a->dealer = zmq_socket(a->ctx, ZMQ_DEALER);
    a->pull = zmq_socket(a->ctx, ZMQ_PULL);
    if (!a->dealer || !a->pull) rc = foil_err_set(err, FOIL_EINTERNAL, "zmq_socket: %s", zmq_strerror(errno));
  }
  if (!rc) {
    int linger = 0, immediate = 1, hwm = 1000;
    zmq_setsockopt(a->dealer, ZMQ_ROUTING_ID, a->route, strlen(a->route));
    zmq_setsockopt(a->dealer, ZMQ_LINGER, &linger, sizeof linger);
    /* nothing queues for a coordinator that is not there: what matters is resent */
    zmq_setsockopt(a->dealer, ZMQ_IMMEDIATE, &immediate, sizeof immediate);
    zmq_setsockopt(a->pull, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(a->pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    rc = auth_client_socket(&a->keys, a->dealer, err);
    if (!rc) log_line(a->log, "INFO", "worker", "%s", a->keys.on ? "CURVE on: this worker authenticates with its key"
                                                       : "no keys: talking to the coordinator without CURVE");
    memset(a->keys.sec, 0, sizeof a->keys.sec);  /* the socket has it */
    if (!rc) auth_watch(a->ctx, a->dealer, &a->mon);
    if (!rc && zmq_connect(a->dealer, cfg->coordinator))
      rc = foil_err_set(err, FOIL_EINVAL, "bad coordinator address %s: %s", cfg->coordinator, zmq_strerror(errno));
  }
  if (!rc) {
    size_t len = sizeof a->progress_ep;
    if (zmq_bind(a->pull, "tcp://127.0.0.1:*") ||
        zmq_getsockopt(a->pull, ZMQ_LAST_ENDPOINT, a->progress_ep, &len))
      rc = foil_err_set(err, FOIL_EUNAVAIL, "cannot open the progress endpoint: %s", zmq_strerror(errno));
  }
#ifdef __linux__
  /* orphans of a job's process group come to us to be reaped */
  if (!rc) prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
  if (rc) {
    agent_destroy(&a);
    return rc;
  }
  *out = a;
  return FOIL_OK;
}

void agent_destroy(agent **ap) {
  agent *a = *ap;
  if (!a) return;
  while (a->attempts) remove_attempt(a, a->attempts);
  outbox_destroy(&a->ob);
  auth_unwatch(a->dealer, &a->mon);
  if (a->dealer) zmq_close(a->dealer);
  if (a->pull) zmq_close(a->pull);
  if (a->ctx) zmq_ctx_term(a->ctx);
  free(a);
  *ap = NULL;
}
