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

#endif
