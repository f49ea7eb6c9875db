#define _GNU_SOURCE
#include "s3front.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t front_pid = -1;
static int front_stdin = -1;

static int spawn(const char *root, const char *ak, const char *sk, const char *const *buckets,
                 int nbuckets, int *port) {
  int in[2], out[2];
  if (nbuckets < 1 || nbuckets > 8 || pipe2(in, O_CLOEXEC) < 0)
    return -1;
  if (pipe2(out, O_CLOEXEC) < 0) {
    close(in[0]);
    close(in[1]);
    return -1;
  }
  char script[1024];
  snprintf(script, sizeof script, "%s/tests/integration/s3/s3-front.js", root);
  /*
   * s3rver 3.7.1 makes its ListObjectsV2 continuation tokens with DES, which
   * the OpenSSL 3 of current node only offers in its legacy provider.
   */
  const char *argv[8 + 2 * 8 + 1] = {"node", "--openssl-legacy-provider", script, "--key", ak,
                                     "--secret", sk};
  int argc = 7;
  for (int i = 0; i < nbuckets; i++) {
    argv[argc++] = "--bucket";
    argv[argc++] = buckets[i];
  }
  argv[argc] = NULL;
  front_pid = fork();
  if (front_pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execvp("node", (char *const *)argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  front_stdin = in[1];
  if (front_pid < 0) {
    close(out[0]);
    return -1;
  }
  FILE *f = fdopen(out[0], "r");
  char line[256] = "";
  if (!f) {
    close(out[0]);
    return -1;
  }
  int ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  return ok && sscanf(line, "{\"port\":%d", port) == 1 ? 0 : -1;
}

const char *hl_test_s3front_start(const char *access_key, const char *secret_key,
                                  const char *const *buckets, int nbuckets, int *port) {
  const char *root = getenv("HL_SOURCE_ROOT");
  if (!root)
    return "HL_SOURCE_ROOT is not set";
  if (system("node --version >/dev/null 2>&1") != 0)
    return "node is not installed";
  char modpath[1024];
  snprintf(modpath, sizeof modpath, "%s/tools/npm/node_modules/s3rver/package.json", root);
  if (access(modpath, R_OK) != 0)
    return "s3rver is not installed (scripts/bootstrap installs tools/npm)";
  if (spawn(root, access_key, secret_key, buckets, nbuckets, port) < 0) {
    hl_test_s3front_stop();
    return "the S3 front did not start";
  }
  return NULL;
}

void hl_test_s3front_stop(void) {
  if (front_stdin >= 0)
    close(front_stdin);
  front_stdin = -1;
  if (front_pid <= 0)
    return;
  for (int i = 0; i < 50; i++) {
    if (waitpid(front_pid, NULL, WNOHANG) == front_pid) {
      front_pid = -1;
      return;
    }
    usleep(100000);
  }
  kill(front_pid, SIGKILL);
  waitpid(front_pid, NULL, 0);
  front_pid = -1;
}
