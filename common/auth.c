/* auth.c — see auth.h. */
#define _DEFAULT_SOURCE  /* explicit_bzero */
#include "common/auth.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define AUTH_DOMAIN "foil"
#define AUTH_WORKER_DOMAIN "foil-workers" /* sockets only worker keys may reach */
#define AUTH_MAX_FILE 4096

static const char *const role_names[] = {"none", "admin", "submitter", "reader", "worker"};

const char *auth_role_name(int role) {
  return role > AUTH_NONE && role <= AUTH_WORKER ? role_names[role] : "none";
}

int auth_role_parse(const char *s) {
  for (int r = AUTH_ADMIN; r <= AUTH_WORKER; r++)
    if (s && !strcmp(s, role_names[r])) return r;
  return AUTH_NONE;
}

static int name_ok(const char *s) {
  if (!*s || strlen(s) > AUTH_MAX_NAME) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '.' || *s == '_' || *s == '-'))
      return 0;
  return 1;
}

/* A Z85 key: 40 characters that decode to 32 bytes. */
static int z85_ok(const char *s) {
  uint8_t bin[32];
  return strlen(s) == AUTH_Z85_LEN && zmq_z85_decode(bin, s) != NULL;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
  return s;
}

/* Reads a key file into buf (n bytes, NUL-terminated) through one open
 * file: the checks (a regular file, its size, its mode into *mode) are of
 * what is read, not of what the path named a moment before, and a FIFO
 * or device put in an allow-list directory is refused, never waited on. */
static int read_key_file(const char *path, char *buf, size_t n, mode_t *mode, foil_err *err) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return foil_err_set(err, FOIL_EINVAL, "cannot read the key file %s: %s", path, strerror(errno));
  struct stat st;
  int rc = FOIL_OK;
  if (fstat(fd, &st)) rc = foil_err_set(err, FOIL_EINVAL, "cannot read the key file %s: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode)) rc = foil_err_set(err, FOIL_EINVAL, "%s is not a regular file", path);
  else if (st.st_size >= (off_t)n) rc = foil_err_set(err, FOIL_EINVAL, "%s is not a foil key file (too big)", path);
  size_t len = 0;
  while (!rc && len < n - 1) {
    ssize_t r = read(fd, buf + len, n - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) rc = foil_err_set(err, FOIL_EINVAL, "cannot read the key file %s: %s", path, strerror(errno));
    if (r <= 0) break;
    len += (size_t)r;
  }
  if (!rc && len == n - 1) rc = foil_err_set(err, FOIL_EINVAL, "%s is not a foil key file (too big)", path);
  buf[rc ? 0 : len] = 0;
  *mode = st.st_mode;
  close(fd);
  return rc;
}

int auth_cert_load(const char *path, int need_secret, auth_cert *out, foil_err *err) {
  memset(out, 0, sizeof *out);
  char data[AUTH_MAX_FILE + 1];
  mode_t mode = 0;
  int rc = read_key_file(path, data, sizeof data, &mode, err), lineno = 0;
  if (rc) return rc;
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    line = trim(line);
    if (!*line || *line == '#') continue;
    char *eq = strchr(line, '=');
    if (!eq) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: expected \"key = value\"", path, lineno);
      break;
    }
    *eq = 0;
    char *k = trim(line), *v = trim(eq + 1);
    size_t vl = strlen(v);
    if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') v[vl - 1] = 0, v++;
    if (!strcmp(k, "name")) {
      if (!name_ok(v)) rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: a name is 1 to %d letters, digits, '.', '_', '-'", path, lineno, AUTH_MAX_NAME);
      else snprintf(out->name, sizeof out->name, "%s", v);
    } else if (!strcmp(k, "role")) {
      if (!(out->role = auth_role_parse(v)))
        rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: role \"%s\" is not admin, submitter, reader or worker", path, lineno, v);
    } else if (!strcmp(k, "public-key") || !strcmp(k, "secret-key")) {
      if (!z85_ok(v)) rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: %s is not a 40-character Z85 key", path, lineno, k);
      else snprintf(k[0] == 'p' ? out->pub : out->sec, sizeof out->pub, "%s", v);
    }  /* other keys: ignored, for what later versions add */
  }
  explicit_bzero(data, sizeof data);  /* it may have held a secret key */
  if (rc) return rc;
  if (!out->pub[0]) return foil_err_set(err, FOIL_EINVAL, "%s has no public-key line", path);
  if (!out->name[0]) return foil_err_set(err, FOIL_EINVAL, "%s has no name line", path);
  if (!out->role) return foil_err_set(err, FOIL_EINVAL, "%s has no role line", path);
  if (out->sec[0] && (mode & 077)) {
    memset(out->sec, 0, sizeof out->sec);
    return foil_err_set(err, FOIL_EPERM, "%s holds a secret key but others may read it (chmod 600 %s)", path, path);
  }
  if (need_secret) {
    char pub[AUTH_Z85_LEN + 1];
    if (!out->sec[0]) return foil_err_set(err, FOIL_EINVAL, "%s has no secret-key line (a NAME.key_secret file is needed)", path);
    if (zmq_curve_public(pub, out->sec) || strcmp(pub, out->pub))
      return foil_err_set(err, FOIL_EINVAL, "%s: its public-key does not belong to its secret-key", path);
  }
  return FOIL_OK;
}

int auth_keys_gen(const char *dir, const char *name, int role, foil_err *err) {
  if (!name_ok(name))
    return foil_err_set(err, FOIL_EINVAL, "key name \"%s\": 1 to %d letters, digits, '.', '_', '-'", name, AUTH_MAX_NAME);
  if (role <= AUTH_NONE || role > AUTH_WORKER) return foil_err_set(err, FOIL_EINVAL, "not a role");
  if (!zmq_has("curve")) return foil_err_set(err, FOIL_EUNAVAIL, "this libzmq was built without CURVE");
  int rc = foil_mkdirs(dir, err);
  if (rc) return rc;
  char pubp[4096], secp[4096];
  snprintf(pubp, sizeof pubp, "%s/%s.key", dir, name);
  snprintf(secp, sizeof secp, "%s/%s.key_secret", dir, name);
  struct stat st;
  if (!stat(pubp, &st) || !stat(secp, &st))
    return foil_err_set(err, FOIL_EEXIST, "%s or %s exists already: remove it first or pick another name", pubp, secp);
  char pub[AUTH_Z85_LEN + 1], sec[AUTH_Z85_LEN + 1];
  if (zmq_curve_keypair(pub, sec)) return foil_err_set(err, FOIL_EINTERNAL, "zmq_curve_keypair: %s", zmq_strerror(errno));
  char text[512];
  int n = snprintf(text, sizeof text,
                   "# foil certificate (secret): keep it private\nname = %s\nrole = %s\npublic-key = \"%s\"\n"
                   "secret-key = \"%s\"\n", name, auth_role_name(role), pub, sec);
  rc = foil_write_file_atomic_mode(secp, text, (size_t)n, 0600, err);
  if (rc) return rc;
  n = snprintf(text, sizeof text,
               "# foil certificate (public): copy into a server's allow-list directory\nname = %s\nrole = %s\n"
               "public-key = \"%s\"\n", name, auth_role_name(role), pub);
  return foil_write_file_atomic_mode(pubp, text, (size_t)n, 0644, err);
}

/* ---- the ZAP handler -------------------------------------------------- */

static volatile sig_atomic_t reload_requested;
void auth_request_reload(void) { reload_requested = 1; }

typedef struct {
  uint8_t key[32];
  int role;
  char user[AUTH_MAX_NAME + 16];   /* "role:name" */
} allowed;

struct auth {
  int on, insecure;
  auth_cert self;
  char allow_dir[2048];
  FILE *log;
  char component[32];
  void *zap;                 /* REP, owned by the thread once it runs */
  pthread_t thread;
  int started;
  atomic_int stop;
  atomic_ulong accepted, refused;
  allowed *list;             /* the handler thread's alone after start */
  size_t nlist;
  double window;             /* refusal log lines: at most AUTH_LOG_BURST a second */
  unsigned nlogged, nquiet;
};

#define AUTH_LOG_BURST 20

/* Reads the allow-list directory into a fresh table; on failure the old
 * table stays. Bad files are logged and skipped. */
static int load_allow(auth *a, foil_err *err) {
  DIR *d = opendir(a->allow_dir);
  if (!d) return foil_err_set(err, FOIL_EINVAL, "cannot read the allow-list directory %s: %s", a->allow_dir, strerror(errno));
  allowed *list = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".key") || e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", a->allow_dir, e->d_name);
    auth_cert c;
    foil_err ce = {0};
    if (auth_cert_load(path, 0, &c, &ce)) {
      log_line(a->log, "WARN", a->component, "allow-list: skipped %s", ce.msg);
      continue;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      allowed *nl = realloc(list, cap * sizeof *nl);
      if (!nl) {
        free(list);
        closedir(d);
        return foil_err_set(err, FOIL_ENOMEM, "no memory for the allow-list");
      }
      list = nl;
    }
    zmq_z85_decode(list[n].key, c.pub);
    list[n].role = c.role;
    snprintf(list[n].user, sizeof list[n].user, "%s:%s", auth_role_name(c.role), c.name);
    n++;
  }
  closedir(d);
  /* one public key in two files: the same identity twice is kept once; two
   * identities (another name or role) for one key would make the role
   * depend on the directory's order, so that key is refused (O(n^2) over
   * the files, at load only) */
  for (size_t i = 0; i < n; i++) {
    int clash = 0;
    for (size_t k = i + 1; k < n; k++) {
      if (memcmp(list[i].key, list[k].key, 32)) continue;
      if (strcmp(list[i].user, list[k].user)) {
        if (!clash) log_line(a->log, "WARN", a->component, "allow-list: one public key is both %s and %s: refused "
                             "until one file is removed", list[i].user, list[k].user);
        clash = 1;
      }
      list[k--] = list[--n];  /* drop the later copy */
    }
    if (clash) list[i--] = list[--n];
  }
  free(a->list);
  a->list = list, a->nlist = n;
  log_line(a->log, "INFO", a->component, "allow-list %s: %zu key(s)", a->allow_dir, n);
  return FOIL_OK;
}

static int frame_is(zmq_msg_t *f, const char *s) {
  return zmq_msg_size(f) == strlen(s) && !memcmp(zmq_msg_data(f), s, strlen(s));
}

/* Answers one ZAP request (RFC 27): version, request id, domain, address,
 * routing id, mechanism, credentials. */
static void zap_answer(auth *a) {
  zmq_msg_t f[8];
  int n = 0, more = 1;
  while (more) {
    zmq_msg_t x;
    zmq_msg_init(&x);
    if (zmq_msg_recv(&x, a->zap, 0) < 0) {
      zmq_msg_close(&x);
      for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
      return;
    }
    more = zmq_msg_more(&x);
    if (n < 8) f[n++] = x;
    else zmq_msg_close(&x);
  }
  const char *status = "400", *text = "unknown key", *user = "";
  char addr[64] = "?";
  if (n >= 4) {
    size_t l = zmq_msg_size(&f[3]) < sizeof addr - 1 ? zmq_msg_size(&f[3]) : sizeof addr - 1;
    memcpy(addr, zmq_msg_data(&f[3]), l);
    addr[l] = 0;
  }
  if (n < 6 || !frame_is(&f[0], "1.0")) {
    text = "malformed ZAP request";
  } else if (!frame_is(&f[5], "CURVE") || n < 7 || zmq_msg_size(&f[6]) != 32) {
    text = "CURVE is required";
  } else {
    int workers_only = frame_is(&f[2], AUTH_WORKER_DOMAIN);
    for (size_t i = 0; i < a->nlist; i++)
      if (!memcmp(a->list[i].key, zmq_msg_data(&f[6]), 32)) {
        if (workers_only && a->list[i].role != AUTH_WORKER) {
          text = "not a worker key (this is the worker port)";
          break;
        }
        status = "200", text = "OK", user = a->list[i].user;
        break;
      }
  }
  if (*status == '2') {
    atomic_fetch_add(&a->accepted, 1);
    log_line(a->log, "INFO", a->component, "authenticated %s from %s", user, addr);
  } else {
    atomic_fetch_add(&a->refused, 1);
    char pub[AUTH_Z85_LEN + 1] = "";
    if (n >= 7 && zmq_msg_size(&f[6]) == 32) zmq_z85_encode(pub, zmq_msg_data(&f[6]), 32);
    double now = log_mono();
    if (now - a->window >= 1.0) {
      if (a->nquiet)
        log_line(a->log, "WARN", a->component, "refused %u more client(s) in the last second (not logged one by one)",
                 a->nquiet);
      a->window = now, a->nlogged = a->nquiet = 0;
    }
    if (a->nlogged++ < AUTH_LOG_BURST)
      log_line(a->log, "WARN", a->component, "refused a client from %s: %s%s%s", addr, text, pub[0] ? " " : "", pub);
    else
      a->nquiet++;
  }
  /* reply: version, request id, status code, status text, user id, metadata */
  const char *v[6] = {"1.0", NULL, status, text, user, ""};
  for (int i = 0; i < 6; i++) {
    int fl = i < 5 ? ZMQ_SNDMORE : 0;
    if (i == 1) {
      if (n >= 2) zmq_send(a->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), fl);
      else zmq_send(a->zap, "", 0, fl);
    } else {
      zmq_send(a->zap, v[i], strlen(v[i]), fl);
    }
  }
  for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

static void *zap_thread(void *arg) {
  auth *a = arg;
  while (!atomic_load(&a->stop)) {
    if (reload_requested) {
      reload_requested = 0;
      foil_err e = {0};
      if (load_allow(a, &e)) log_line(a->log, "ERROR", a->component, "allow-list not reloaded (the old one stays): %s", e.msg);
    }
    zmq_pollitem_t it = {.socket = a->zap, .events = ZMQ_POLLIN};
    int r = zmq_poll(&it, 1, 200);
    if (r > 0) zap_answer(a);
  }
  zmq_close(a->zap);
  a->zap = NULL;
  return NULL;
}

int auth_new(auth **out, void *zctx, const auth_opts *o, foil_err *err) {
  *out = NULL;
  int haskey = o->key && *o->key, hasdir = o->allow && *o->allow;
  if (haskey != hasdir)
    return foil_err_set(err, FOIL_EINVAL, "CURVE needs both the server's key pair (--curve-key NAME.key_secret) "
                                          "and the allow-list directory (--allow-keys DIR)");
  auth *a = calloc(1, sizeof *a);
  if (!a) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  a->log = o->log ? o->log : stderr;
  a->insecure = o->insecure;
  snprintf(a->component, sizeof a->component, "%s", o->component ? o->component : "auth");
  int rc = FOIL_OK;
  if (haskey) {
    a->on = 1;
    snprintf(a->allow_dir, sizeof a->allow_dir, "%s", o->allow);
    if (!zmq_has("curve")) rc = foil_err_set(err, FOIL_EUNAVAIL, "this libzmq was built without CURVE");
    if (!rc) rc = auth_cert_load(o->key, 1, &a->self, err);
    if (!rc) auth_protect_process();
    if (!rc) rc = load_allow(a, err);
    if (!rc) {
      a->zap = zmq_socket(zctx, ZMQ_REP);
      int zero = 0;
      if (!a->zap) rc = foil_err_set(err, FOIL_EINTERNAL, "zmq_socket: %s", zmq_strerror(errno));
      else zmq_setsockopt(a->zap, ZMQ_LINGER, &zero, sizeof zero);
      if (!rc && zmq_bind(a->zap, ZAP_ENDPOINT))
        rc = foil_err_set(err, FOIL_EINTERNAL, "cannot start the ZAP handler: %s", zmq_strerror(errno));
    }
    if (!rc) {
      if (pthread_create(&a->thread, NULL, zap_thread, a)) rc = foil_err_set(err, FOIL_EINTERNAL, "cannot start the ZAP thread");
      else a->started = 1;
    }
  }
  if (rc) {
    auth_destroy(&a);
    return rc;
  }
  *out = a;
  return FOIL_OK;
}

void auth_destroy(auth **ap) {
  auth *a = *ap;
  if (!a) return;
  if (a->started) {
    atomic_store(&a->stop, 1);
    pthread_join(a->thread, NULL);
  }
  if (a->zap) zmq_close(a->zap);
  free(a->list);
  free(a);
  *ap = NULL;
}

int auth_enabled(const auth *a) { return a && a->on; }

void auth_protect_process(void) { prctl(PR_SET_DUMPABLE, 0); }

void auth_counts(auth *a, unsigned long *acc, unsigned long *ref) {
  *acc = a ? atomic_load(&a->accepted) : 0;
  *ref = a ? atomic_load(&a->refused) : 0;
}

/* 1 for an endpoint only this machine can reach */
static int local_endpoint(const char *ep) {
  if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9)) return 1;
  if (strncmp(ep, "tcp://", 6)) return 0;
  const char *h = ep + 6;
  return !strncmp(h, "127.", 4) || !strncmp(h, "localhost:", 10) || !strncmp(h, "[::1]:", 6) || !strncmp(h, "lo:", 3);
}

static int server_socket(auth *a, void *sock, const char *endpoint, const char *domain, foil_err *err) {
  if (auth_enabled(a)) {
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, a->self.sec, AUTH_Z85_LEN) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)))
      return foil_err_set(err, FOIL_EINTERNAL, "cannot make %s a CURVE server: %s", endpoint, zmq_strerror(errno));
    return FOIL_OK;
  }
  if (!local_endpoint(endpoint) && !(a && a->insecure))
    return foil_err_set(err, FOIL_EPERM,
                        "refusing to listen on %s without authentication: give --curve-key KEY_SECRET and --allow-keys DIR "
                        "(README \"A secure cluster\"), use a loopback address, or pass --insecure", endpoint);
  return FOIL_OK;
}

int auth_server_socket(auth *a, void *sock, const char *endpoint, foil_err *err) {
  return server_socket(a, sock, endpoint, AUTH_DOMAIN, err);
}

int auth_worker_socket(auth *a, void *sock, const char *endpoint, foil_err *err) {
  return server_socket(a, sock, endpoint, AUTH_WORKER_DOMAIN, err);
}

int auth_peer(const auth *a, zmq_msg_t *frame, char *name, size_t n) {
  if (n) name[0] = 0;
  if (!auth_enabled(a)) return AUTH_ADMIN;
  const char *u = zmq_msg_gets(frame, "User-Id");
  const char *colon = u ? strchr(u, ':') : NULL;
  if (!colon) return AUTH_NONE;
  char role[16];
  size_t rl = (size_t)(colon - u);
  if (rl >= sizeof role) return AUTH_NONE;
  memcpy(role, u, rl);
  role[rl] = 0;
  if (n) snprintf(name, n, "%s", colon + 1);
  return auth_role_parse(role);
}

/* ---- client side ------------------------------------------------------ */

static const char *pick(const char *flag, const char *env, const char *dir_file, char *buf, size_t n) {
  if (flag && *flag) return flag;
  const char *e = getenv(env);
  if (e && *e) return e;
  const char *d = getenv("FOIL_KEYS");
  if (d && *d) {
    snprintf(buf, n, "%s/%s", d, dir_file);
    return buf;
  }
  return NULL;
}

int auth_client_load(auth_client *c, const char *key, const char *server_key, foil_err *err) {
  memset(c, 0, sizeof *c);
  char b1[4096], b2[4096];
  const char *kp = pick(key, "FOIL_KEY", "client.key_secret", b1, sizeof b1);
  const char *sp = pick(server_key, "FOIL_SERVER_KEY", "server.key", b2, sizeof b2);
  if (!kp && !sp) return FOIL_OK;
  if (!kp || !sp)
    return foil_err_set(err, FOIL_EINVAL, "CURVE needs both this client's key pair (--key / $FOIL_KEY) and the "
                                          "server's public key (--server-key / $FOIL_SERVER_KEY)");
  auth_cert mine, srv;
  int rc = auth_cert_load(kp, 1, &mine, err);
  if (!rc) rc = auth_cert_load(sp, 0, &srv, err);
  if (rc) return rc;
  c->on = 1;
  memcpy(c->pub, mine.pub, sizeof c->pub);
  memcpy(c->sec, mine.sec, sizeof c->sec);
  memcpy(c->server, srv.pub, sizeof c->server);
  return FOIL_OK;
}

int auth_client_socket(const auth_client *c, void *sock, foil_err *err) {
  if (!c || !c->on) return FOIL_OK;
  if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server, AUTH_Z85_LEN) ||
      zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->pub, AUTH_Z85_LEN) ||
      zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->sec, AUTH_Z85_LEN))
    return foil_err_set(err, FOIL_EINTERNAL, "cannot make a CURVE client: %s", zmq_strerror(errno));
  return FOIL_OK;
}

void auth_watch(void *zctx, void *sock, void **mon) {
  static atomic_uint seq;
  *mon = NULL;
  char ep[96];
  snprintf(ep, sizeof ep, "inproc://foil-auth-monitor-%u", atomic_fetch_add(&seq, 1));
  if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
    return;
  void *m = zmq_socket(zctx, ZMQ_PAIR);
  int zero = 0;
  if (m) zmq_setsockopt(m, ZMQ_LINGER, &zero, sizeof zero);
  if (m && zmq_connect(m, ep)) {
    zmq_close(m);
    m = NULL;
  }
  if (!m) zmq_socket_monitor(sock, NULL, 0);
  *mon = m;
}

const char *auth_handshake_failed(void *mon, const auth_client *c) {
  unsigned n[AUTH_HS_KINDS] = {0};
  return auth_handshake_count(mon, c, n);
}

const char *auth_handshake_count(void *mon, const auth_client *c, unsigned n[AUTH_HS_KINDS]) {
  const char *why = NULL;
  while (mon) {
    zmq_msg_t ev;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&ev);
      break;
    }
    if (zmq_msg_size(&ev) >= 6) {  /* event (16 bits), value (32 bits); then the endpoint frame */
      uint16_t e;
      memcpy(&e, zmq_msg_data(&ev), 2);
      n[e == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH       ? AUTH_HS_REFUSED
        : e == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? AUTH_HS_PROTOCOL
                                                   : AUTH_HS_CLOSED]++;
      if (e == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        why = "the server refused this client's key (is its NAME.key in the server's allow-list?)";
      else if (!why)
        why = c && c->on ? "the CURVE handshake failed (is --server-key the server's public key? does the server run CURVE?)"
                         : "the handshake failed (the server runs CURVE: give --key and --server-key, or set $FOIL_KEYS)";
    }
    int more = zmq_msg_more(&ev);
    zmq_msg_close(&ev);
    while (more) {
      zmq_msg_init(&ev);
      if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) more = 0;
      else more = zmq_msg_more(&ev);
      zmq_msg_close(&ev);
    }
  }
  return why;
}

void auth_unwatch(void *sock, void **mon) {
  if (!*mon) return;
  if (sock) zmq_socket_monitor(sock, NULL, 0);
  zmq_close(*mon);
  *mon = NULL;
}
