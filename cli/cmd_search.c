/* cmd_search.c — `foil search`: top-k over a running foil-serve (or its
 * router), by text or by vectors from a file. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/pbjson.h"
#include "common/auth.h"
#include "common/client.h"
#include "common/fileio.h"
#include "common/wire.h"
#include "foil/v1/search.pb-c.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil search [TEXT] [-k N] [--index NAME] [--server EP] [--vector-file F]\n"
          "                   [--id-range LO:HI] [--json] [--root DIR] [--timeout SECONDS]\n"
          "\n"
          "Asks foil-serve for the k nearest rows of an index (by inner product; cosine for\n"
          "normalized indexes) to TEXT, encoded with the index's checkpoint, or to each vector\n"
          "of --vector-file. Prints RANK ID KEY SCORE per query and the version that answered.\n"
          "  -k N              hits per query (default 10, at most 1000)\n"
          "  --index NAME      the index: finds its server in ROOT/indexes/NAME/serve.json\n"
          "                    (default: the only index there with a serve.json)\n"
          "  --server EP       the server's address (default: --index's serve.json, else\n"
          "                    $FOIL_SERVE, else the only index's serve.json)\n"
          "  --vector-file F   query vectors, one per line, numbers separated by blanks or\n"
          "                    commas (F - : standard input); any number of them, sent in\n"
          "                    requests of 1024 whose replies must come from one version\n"
          "  --id-range LO:HI  only rows whose id is in [LO, HI]\n"
          "  --json            the reply as JSON (foil.v1.SearchReply field names)\n"
          "  --root DIR        data root (default $FOIL_ROOT, else ./foil-data)\n"
          "  --timeout SECONDS wait this long for each reply (default $FOIL_TIMEOUT, else 30)\n"
          "  --key FILE        CURVE: this user's NAME.key_secret (default $FOIL_KEY, else\n"
          "                    $FOIL_KEYS/client.key_secret; none: no CURVE)\n"
          "  --server-key FILE the server's public NAME.key (default $FOIL_SERVER_KEY, else\n"
          "                    $FOIL_KEYS/server.key)\n"
          "Every option also takes the form --opt=VALUE.\n");
}

enum { QUERY_CHUNK = 1024 }; /* queries per request: foil-serve's limit */

/* The "endpoint" of a serve.json; 1 if found. */
static int serve_json(const char *path, char *out, size_t n) {
  char *data = NULL;
  size_t len = 0;
  if (foil_read_file(path, &data, &len, NULL)) return 0;
  cJSON *j = cJSON_Parse(data);
  free(data);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "endpoint");
  int ok = cJSON_IsString(v) && v->valuestring[0];
  if (ok) snprintf(out, n, "%s", v->valuestring);
  cJSON_Delete(j);
  return ok;
}

static int find_server(const char *flag, const char *root, const char *index, char *out, size_t n,
                       foil_err *err) {
  const char *env = getenv("FOIL_SERVE");
  char path[2048];
  /* an explicit --index beats the environment's default server, which
   * may serve another index (a SearchRequest names none) */
  if (flag && *flag) return snprintf(out, n, "%s", flag), FOIL_OK;
  if (index) {
    snprintf(path, sizeof path, "%s/indexes/%s/serve.json", root, index);
    if (serve_json(path, out, n)) return FOIL_OK;
    return foil_err_set(err, FOIL_EUNAVAIL, "no server for index %s (%s is missing: start `foil-serve --index %s`, "
                        "or give --server)", index, path, index);
  }
  if (env && *env) return snprintf(out, n, "%s", env), FOIL_OK;
  snprintf(path, sizeof path, "%s/indexes", root);
  DIR *d = opendir(path);
  int found = 0;
  char names[512] = "";
  size_t used = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p2[2400], ep[512];
    snprintf(p2, sizeof p2, "%s/%s/serve.json", path, e->d_name);
    if (!serve_json(p2, ep, sizeof ep)) continue;
    if (!found++) snprintf(out, n, "%s", ep);
    if (used < sizeof names) used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", e->d_name);
  }
  if (d) closedir(d);
  if (found == 1) return FOIL_OK;
  if (!found)
    return foil_err_set(err, FOIL_EUNAVAIL, "no foil-serve found under %s (give --index NAME or --server EP)", path);
  return foil_err_set(err, FOIL_EINVAL, "several indexes are served (%s): pick one with --index", names);
}

/* Vectors, one per line, into *v (rows×dim). */
static int read_vectors(const char *path, float **v, size_t *rows, size_t *dim, foil_err *err) {
  char *data = NULL;
  size_t len = 0;
  int rc = foil_read_file(!strcmp(path, "-") ? "/dev/stdin" : path, &data, &len, err);
  if (rc) return rc;
  size_t cap = 1024, n = 0;
  float *x = malloc(cap * sizeof *x);
  *rows = 0, *dim = 0;
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); x && line; line = strtok_r(NULL, "\n", &save)) {
    size_t here = 0;
    for (char *p = line;;) {
      while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r') p++;
      if (!*p) break;
      char *end;
      errno = 0;
      float f = strtof(p, &end);
      /* ERANGE on underflow (1e-40: a subnormal or 0, as np.savetxt can
       * write) is a number; only overflow and no number at all are not */
      if (end == p || (errno && !(errno == ERANGE && fabsf(f) < FLT_MIN))) {
        /* the message quotes the text: set before data is freed */
        int rc = foil_err_set(err, FOIL_EINVAL, "%s, vector %zu: '%.20s' is %s", path, *rows + 1, p,
                              end == p ? "not a number" : "out of float32's range");
        free(x), free(data);
        return rc;
      }
      if (n == cap) {
        float *y = realloc(x, 2 * cap * sizeof *y);
        if (!y) {
          free(x), free(data);
          return foil_err_set(err, FOIL_ENOMEM, "no memory for the vectors of %s (%zu numbers read)", path, n);
        }
        x = y, cap *= 2;
      }
      x[n++] = f, here++, p = end;
    }
    if (!here) continue;
    if (*dim && here != *dim) {
      free(x), free(data);
      return foil_err_set(err, FOIL_EINVAL, "%s: vector %zu has %zu numbers, the first has %zu", path, *rows + 1,
                          here, *dim);
    }
    *dim = here, (*rows)++;
  }
  free(data);
  if (!x) return foil_err_set(err, FOIL_ENOMEM, "no memory for the vectors of %s", path);
  if (!*rows) {
    free(x);
    return foil_err_set(err, FOIL_EINVAL, "%s holds no vectors", path);
  }
  *v = x;
  return FOIL_OK;
}

/* One request, one reply (or an error). */
static int call(const char *ep, const auth_client *keys, Foil__V1__ServeRequest *req, int timeout_ms,
                Foil__V1__ServeReply **out, foil_err *err) {
  *out = NULL;
  if (strncmp(ep, "tcp://", 6) && strncmp(ep, "ipc://", 6))
    return foil_err_set(err, FOIL_EINVAL, "server address %s must start with tcp:// or ipc://", ep);
  void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0, rc;
  zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
  /* a DEALER with no peer (a refused CURVE handshake drops it) blocks in
   * send: bound that wait by the same timeout as the reply's */
  zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
  if (auth_client_socket(keys, sock, err)) {
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return err ? err->code : FOIL_EINTERNAL;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  req->request_id = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
  if (zmq_connect(sock, ep)) rc = foil_err_set(err, FOIL_EINVAL, "bad server address %s: %s", ep, zmq_strerror(errno));
  else if (wire_send(sock, NULL, &req->base, 0, err))
    rc = foil_err_set(err, FOIL_EUNAVAIL, "could not send to foil-serve at %s within %.1f s (is it running? %s)", ep,
                      timeout_ms / 1e3, keys->on ? "is this key on its allow-list?" : "does it run CURVE? then give --key and --server-key");
  else rc = FOIL_OK;
  while (!rc) {
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
      rc = foil_err_set(err, FOIL_EUNAVAIL, "no reply from foil-serve at %s within %.1f s (is it running? %s)", ep,
                        timeout_ms / 1e3, keys->on ? "is this key on its allow-list?" : "does it run CURVE? then give --key and --server-key");
      break;
    }
    wire_msg m;
    rc = wire_recv(sock, &m, 0, 1u << 30, 0, err);
    Foil__V1__ServeReply *r = rc ? NULL : foil__v1__serve_reply__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    wire_msg_close(&m);
    if (rc) break;
    if (!r) {
      rc = foil_err_set(err, FOIL_EINTERNAL, "the reply from %s does not parse as a ServeReply", ep);
      break;
    }
    if (r->request_id != req->request_id) {
      foil__v1__serve_reply__free_unpacked(r, NULL);
      continue;
    }
    if (r->body_case == FOIL__V1__SERVE_REPLY__BODY_ERROR) {
      int code = r->error ? client_code_to_err(r->error->code) : FOIL_EINTERNAL;
      rc = foil_err_set(err, code ? code : FOIL_EINTERNAL, "%s", r->error && r->error->message ? r->error->message : "error");
      foil__v1__serve_reply__free_unpacked(r, NULL);
      break;
    }
    *out = r;
    break;
  }
  zmq_close(sock);
  zmq_ctx_term(ctx);
  return rc;
}

/* Seconds as --timeout and $FOIL_TIMEOUT give them, into milliseconds
 * (rounded up: 0.0001 is 1 ms, never 0). */
static int parse_timeout(const char *what, const char *v, int *ms, foil_err *err) {
  char *end = NULL;
  errno = 0;
  double s = strtod(v, &end);
  if (!*v || *end || errno || !(s > 0) || s > 86400)
    return foil_err_set(err, FOIL_EINVAL, "%s must be seconds, more than 0 and at most 86400 (got \"%s\")", what, v);
  *ms = (int)ceil(s * 1000);
  return FOIL_OK;
}

/* The flags that take a value; a NULL-terminated list. */
static const char *const valued[] = {"-k", "--k", "--index", "--server", "--key", "--server-key", "--vector-file",
                                     "--id-range", "--timeout", NULL};

int cmd_search(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return FOIL_OK;
    }
  }
  const char *root = cli_data_root(&argc, argv);
  const char *text = NULL, *index = NULL, *server = NULL, *vfile = NULL, *range = NULL, *key = NULL, *server_key = NULL;
  int json = 0, k = 10, timeout_ms = 30000, dashdash = 0;
  foil_err err = {0};
  const char *env_timeout = getenv("FOIL_TIMEOUT");
  if (env_timeout && *env_timeout && parse_timeout("$FOIL_TIMEOUT", env_timeout, &timeout_ms, &err))
    return cli_fail("search", &err);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (!dashdash && !strcmp(a, "--")) {
      dashdash = 1;
      continue;
    }
    if (!dashdash && !strcmp(a, "--json")) {
      json = 1;
      continue;
    }
    if (dashdash || a[0] != '-' || !a[1]) {
      if (text) {
        foil_err_set(&err, FOIL_EINVAL, "one TEXT only (quote it: foil search \"two words\")");
        return cli_fail("search", &err);
      }
      text = a;
      continue;
    }
    /* "--opt VALUE" or "--opt=VALUE" */
    const char *opt = NULL;
    char name[32];
    for (int f = 0; valued[f] && !opt; f++) {
      size_t l = strlen(valued[f]);
      if (!strcmp(a, valued[f])) {
        opt = valued[f];
        if (i + 1 >= argc) {
          foil_err_set(&err, FOIL_EINVAL, "%s needs a value (see --help)", a);
          return cli_fail("search", &err);
        }
        v = argv[++i];
      } else if (!strncmp(a, valued[f], l) && a[l] == '=') {
        opt = valued[f];
        v = a + l + 1;
      }
    }
    if (!opt) {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", a);
      return cli_fail("search", &err);
    }
    snprintf(name, sizeof name, "%s", opt);
    char *end = NULL;
    if (!strcmp(name, "-k") || !strcmp(name, "--k")) {
      errno = 0;
      long x = v[0] >= '0' && v[0] <= '9' ? strtol(v, &end, 10) : 0;
      if (!end || *end || errno || x < 1 || x > 1000) {
        foil_err_set(&err, FOIL_EINVAL, "-k must be a whole number in 1..1000 (got \"%s\")", v);
        return cli_fail("search", &err);
      }
      k = (int)x;
    } else if (!strcmp(name, "--index")) index = v;
    else if (!strcmp(name, "--server")) server = v;
    else if (!strcmp(name, "--key")) key = v;
    else if (!strcmp(name, "--server-key")) server_key = v;
    else if (!strcmp(name, "--vector-file")) vfile = v;
    else if (!strcmp(name, "--id-range")) range = v;
    else if (parse_timeout("--timeout", v, &timeout_ms, &err)) return cli_fail("search", &err);
  }
  if (!text == !vfile) {
    foil_err_set(&err, FOIL_EINVAL, "give a TEXT or --vector-file F (one of them)");
    return cli_fail("search", &err);
  }
  Foil__V1__SearchRequest sr = FOIL__V1__SEARCH_REQUEST__INIT;
  sr.k = (uint32_t)k;
  if (range) {
    long long lo, hi;
    char tail;
    if (sscanf(range, "%lld:%lld%c", &lo, &hi, &tail) != 2 || lo > hi) {
      foil_err_set(&err, FOIL_EINVAL, "--id-range must be LO:HI with LO <= HI (got \"%s\")", range);
      return cli_fail("search", &err);
    }
    sr.id_range = 1, sr.id_min = lo, sr.id_max = hi;
  }
  float *vec = NULL;
  size_t rows = 1, dim = 0;
  if (vfile && read_vectors(vfile, &vec, &rows, &dim, &err)) return cli_fail("search", &err);
  size_t nchunks = (rows + QUERY_CHUNK - 1) / QUERY_CHUNK;
  Foil__V1__SearchQuery *qs = calloc(rows, sizeof *qs), **qp = calloc(rows, sizeof *qp);
  Foil__V1__ServeReply **reps = calloc(nchunks, sizeof *reps);
  Foil__V1__SearchHits **hits = calloc(rows, sizeof *hits);
  if (!qs || !qp || !reps || !hits) {
    free(vec), free(qs), free(qp), free(reps), free(hits);
    foil_err_set(&err, FOIL_ENOMEM, "no memory");
    return cli_fail("search", &err);
  }
  for (size_t i = 0; i < rows; i++) {
    foil__v1__search_query__init(&qs[i]);
    if (vec) qs[i].vector = vec + i * dim, qs[i].n_vector = dim;
    else qs[i].text = (char *)text;
    qp[i] = &qs[i];
  }
  Foil__V1__ServeRequest req = FOIL__V1__SERVE_REQUEST__INIT;
  req.body_case = FOIL__V1__SERVE_REQUEST__BODY_SEARCH, req.search = &sr;
  char ep[1024];
  int rc = find_server(server, root, index, ep, sizeof ep, &err);
  auth_client keys = {0};
  if (!rc) rc = auth_client_load(&keys, key, server_key, &err);
  /* requests of at most QUERY_CHUNK queries, merged in order; every reply
   * must come from the same index and version (a swap between two requests
   * would mix rankings of two versions: refused, run it again) */
  Foil__V1__SearchReply merged = FOIL__V1__SEARCH_REPLY__INIT;
  size_t nhits = 0;
  for (size_t c = 0; !rc && c < nchunks; c++) {
    size_t lo = c * QUERY_CHUNK, n = rows - lo < QUERY_CHUNK ? rows - lo : QUERY_CHUNK;
    sr.queries = qp + lo, sr.n_queries = n;
    rc = call(ep, &keys, &req, timeout_ms, &reps[c], &err);
    if (rc) break;
    if (reps[c]->body_case != FOIL__V1__SERVE_REPLY__BODY_SEARCH || !reps[c]->search) {
      rc = foil_err_set(&err, FOIL_EINTERNAL, "foil-serve at %s answered with something other than search results", ep);
      break;
    }
    const Foil__V1__SearchReply *s = reps[c]->search;
    if (index && s->index[0] && strcmp(s->index, index)) {
      rc = foil_err_set(&err, FOIL_EINVAL, "foil-serve at %s answers for index %s, not %s (--index)", ep, s->index,
                        index);
      break;
    }
    if (s->n_results != n) {
      rc = foil_err_set(&err, FOIL_EINTERNAL, "foil-serve at %s answered %zu queries with %zu results", ep, n,
                        s->n_results);
      break;
    }
    if (!c) {
      merged = *s;
      merged.server_ms = 0;
    } else if (s->version != merged.version || strcmp(s->index, merged.index)) {
      rc = foil_err_set(&err, FOIL_EABORTED,
                        "the index changed while the queries were asked in requests of %d: queries 1..%zu were "
                        "answered by %s version %u, queries %zu..%zu by %s version %u; run the search again",
                        QUERY_CHUNK, lo, merged.index, merged.version, lo + 1, lo + n, s->index, s->version);
      break;
    }
    merged.server_ms += s->server_ms;
    for (size_t i = 0; i < n; i++) hits[nhits++] = s->results[i];
  }
  memset(&keys, 0, sizeof keys);
  merged.results = hits, merged.n_results = nhits;
  if (!rc && json) {
    rc = pbjson_print(&merged.base);
  } else if (!rc) {
    const Foil__V1__SearchReply *s = &merged;
    printf("index %s version %u (%.1f ms in the server)\n", s->index, s->version, s->server_ms);
    for (size_t i = 0; i < s->n_results; i++) {
      const Foil__V1__SearchHits *h = s->results[i];
      if (s->n_results > 1) printf("%squery %zu\n", i ? "\n" : "", i + 1);
      printf("%4s  %12s  %-24s  %s\n", "RANK", "ID", "KEY", "SCORE");
      for (size_t j = 0; j < h->n_ids; j++)
        printf("%4zu  %12lld  %-24s  %.6f\n", j + 1, (long long)h->ids[j],
               j < h->n_keys && h->keys[j][0] ? h->keys[j] : "-", j < h->n_scores ? h->scores[j] : 0.0f);
    }
  }
  for (size_t c = 0; c < nchunks; c++)
    if (reps[c]) foil__v1__serve_reply__free_unpacked(reps[c], NULL);
  free(vec), free(qs), free(qp), free(reps), free(hits);
  return rc ? cli_fail("search", &err) : FOIL_OK;
}
