/* follow.c — see follow.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/follow.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/ctl.h"
#include "cli/jobstate.h"
#include "cli/signame.h"
#include "cli/timefmt.h"

/* Appends to buf at *at, never past n. */
static void add(char *buf, size_t n, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t n, size_t *at, const char *fmt, ...) {
  if (*at >= n) return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(buf + *at, n - *at, fmt, ap);
  va_end(ap);
  if (w > 0) *at += (size_t)w < n - *at ? (size_t)w : n - *at - 1;
}

/* "0.4312" for a double, "845" for large values. */
static void add_num(char *buf, size_t n, size_t *at, double v) {
  if (fabs(v) >= 100 || v == floor(v)) add(buf, n, at, "%.0f", v);
  else add(buf, n, at, "%.4g", v);
}

/* loss and a throughput from metrics_json (pairs_per_s, else the first
 * key ending in "_per_s"). */
static void add_metrics(const char *json, int tty, char *buf, size_t n, size_t *at) {
  cJSON *m = json && *json ? cJSON_Parse(json) : NULL;
  if (!cJSON_IsObject(m)) {
    cJSON_Delete(m);
    return;
  }
  const cJSON *loss = cJSON_GetObjectItemCaseSensitive(m, "loss");
  if (cJSON_IsNumber(loss)) {
    add(buf, n, at, " loss ");
    add_num(buf, n, at, loss->valuedouble);
  }
  const cJSON *rate = cJSON_GetObjectItemCaseSensitive(m, "pairs_per_s"), *it;
  if (!cJSON_IsNumber(rate)) {
    rate = NULL;
    cJSON_ArrayForEach(it, m) {
      size_t l = strlen(it->string);
      if (cJSON_IsNumber(it) && l > 6 && !strcmp(it->string + l - 6, "_per_s")) {
        rate = it;
        break;
      }
    }
  }
  if (rate) {
    if (tty) {
      size_t l = strlen(rate->string);
      add(buf, n, at, " ");
      add_num(buf, n, at, rate->valuedouble);
      add(buf, n, at, " %.*s/s", (int)(l - 6), rate->string);
    } else {
      add(buf, n, at, " %s ", rate->string);
      add_num(buf, n, at, rate->valuedouble);
    }
  }
  cJSON_Delete(m);
}

char *follow_render(const Foil__V1__Job *job, double rate, int bar_width, char *buf, size_t n) {
  size_t at = 0;
  buf[0] = 0;
  add(buf, n, &at, "job %llu %s", (unsigned long long)job->id, jobstate_name(job->state));
  if (job->state == FOIL__V1__JOB_STATE__JOB_PENDING && job->reason && *job->reason)
    add(buf, n, &at, " (%s)", job->reason);
  const Foil__V1__Progress *p = job->progress;
  if (p && (p->value > 0 || p->total > 0)) {
    double frac = p->total > 0 ? fmin(fmax(p->value / p->total, 0), 1) : -1;
    if (bar_width > 0 && frac >= 0) {
      int full = (int)floor(frac * bar_width);
      add(buf, n, &at, " [");
      for (int i = 0; i < bar_width; i++) add(buf, n, &at, "%c", i < full ? '#' : '.');
      add(buf, n, &at, "]");
    }
    add(buf, n, &at, " ");
    add_num(buf, n, &at, p->value);
    if (p->total > 0) {
      add(buf, n, &at, "/");
      add_num(buf, n, &at, p->total);
      add(buf, n, &at, " %.0f%%", floor(frac * 100));
    }
  }
  if (p) add_metrics(p->metrics_json, bar_width > 0, buf, n, &at);
  if (p && p->total > 0 && !jobstate_is_final(job->state)) {
    char t[32];
    double eta = timefmt_eta(p->value, p->total, rate);
    if (eta >= 0) add(buf, n, &at, bar_width > 0 ? " ETA %s" : " eta %s", timefmt_duration(eta, t, sizeof t));
  }
  if (p && p->message && *p->message) add(buf, n, &at, " %s", p->message);
  return buf;
}

char *follow_final(const Foil__V1__Job *job, char *buf, size_t n) {
  size_t at = 0;
  buf[0] = 0;
  add(buf, n, &at, "job %llu %s", (unsigned long long)job->id, jobstate_name(job->state));
  const Foil__V1__Attempt *last = job->n_attempts ? job->attempts[job->n_attempts - 1] : NULL;
  if (last && last->signal) {
    const char *s = signame_name(last->signal);
    if (s) add(buf, n, &at, " signal %s", s);
    else add(buf, n, &at, " signal %d", last->signal);
  } else if (job->state != FOIL__V1__JOB_STATE__JOB_CANCELLED || job->exit_code) {
    add(buf, n, &at, " exit %d", job->exit_code);
  }
  if (job->reason && *job->reason) add(buf, n, &at, " (%s)", job->reason);
  if (!strcmp(jobstate_name(job->state), "UNKNOWN")) /* taken as final: never polled forever */
    add(buf, n, &at, " [state %d is not one this foil knows: a newer coordinator?]", job->state);
  return buf;
}

static int term_width(FILE *out) {
  struct winsize ws;
  if (!ioctl(fileno(out), TIOCGWINSZ, &ws) && ws.ws_col > 20) return ws.ws_col;
  return 80;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  nanosleep(&ts, NULL);
}

int follow_job(client *c, uint64_t id, FILE *out, double interval_s, int *final_state,
               foil_err *err) {
  int tty = isatty(fileno(out));
  char line[1024], last[1024] = "";
  double v0 = -1, t0 = 0;         /* first progress sample of this attempt */
  uint32_t attempts_seen = 0;
  for (;;) {
    Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
    Foil__V1__WatchRequest w = FOIL__V1__WATCH_REQUEST__INIT;
    w.job_id = id;
    req.body_case = FOIL__V1__REQUEST__BODY_WATCH;
    req.watch = &w;
    Foil__V1__Reply *r;
    int rc = ctl_call(c, &req, FOIL__V1__REPLY__BODY_JOB, 3, &r, err);
    if (rc) {
      if (tty && last[0]) fputc('\n', out);
      return rc;
    }
    const Foil__V1__Job *job = r->job;
    const Foil__V1__Progress *p = job->progress;
    double rate = 0;
    if (job->restart_count != attempts_seen || (p && p->value < v0)) {
      attempts_seen = job->restart_count;
      v0 = -1;
    }
    if (p && p->time > 0) {
      if (v0 < 0) {
        v0 = p->value;
        t0 = p->time;
      } else if (p->time > t0 && p->value > v0) {
        rate = (p->value - v0) / (p->time - t0);
      }
    }
    if (rate <= 0 && p && p->value > 0 && job->start_time > 0 && p->time > job->start_time)
      rate = p->value / (p->time - job->start_time); /* one sample: since the attempt began */
    int final = jobstate_is_final(job->state);
    if (tty) {
      int width = term_width(out);
      follow_render(job, rate, width >= 100 ? 30 : 20, line, sizeof line);
      if ((int)strlen(line) >= width) line[width - 1] = 0;
      fprintf(out, "\r\033[K%s", line);
      snprintf(last, sizeof last, "%s", line);
      if (final) fputc('\n', out);
    } else {
      /* the ETA changes every poll; a line is printed when anything else does */
      follow_render(job, 0, 0, line, sizeof line);
      if (strcmp(line, last)) {
        snprintf(last, sizeof last, "%s", line);
        follow_render(job, rate, 0, line, sizeof line);
        if (!final) fprintf(out, "%s\n", line);
      }
    }
    if (final) {
      fprintf(out, "%s\n", follow_final(job, line, sizeof line));
      fflush(out);
      *final_state = job->state;
      client_free_reply(r);
      return FOIL_OK;
    }
    fflush(out);
    client_free_reply(r);
    sleep_s(interval_s);
  }
}
