/* dead_pid.h — for tests of what foil does with a killed writer's leftovers
 * (foil_tmp_sweep, index versions' .writing markers). */
#ifndef FOIL_TESTS_DEAD_PID_H
#define FOIL_TESTS_DEAD_PID_H

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* A pid that surely no longer runs: a child that has exited and been
 * reaped (reused only after the kernel's pid counter wraps). */
static inline long test_dead_pid(void) {
  pid_t c = fork();
  if (c == 0) _exit(0);
  int st;
  waitpid(c, &st, 0);
  return (long)c;
}

/* A child that has exited and is NOT reaped (a zombie: its pid still
 * exists); reap it with test_reap. */
static inline long test_zombie_pid(void) {
  pid_t c = fork();
  if (c == 0) _exit(0);
  siginfo_t si;
  waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT); /* exited, left unreaped */
  return (long)c;
}

static inline void test_reap(long pid) {
  int st;
  waitpid((pid_t)pid, &st, 0);
}

#endif
