// SPDX-License-Identifier: GPL-2.0
/*
 * bench-run: run one workload and report what the guest kernel charged to
 * it.
 *
 *   bench-run CMD [ARG...]
 *
 * The guest kernel is built from tinyconfig without VM event counters, so
 * /proc/vmstat has no pgmajfault; the per-task fault counters are always
 * kept, though, and wait4() hands them back for the child.  Prints
 *
 *   E2E-RESULT prog=rusage majflt=N minflt=N utime=S stime=S rc=N
 *
 * and exits with the workload's status (128 + signal if it was killed),
 * so a failed verification still fails the run.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e-common.h"

static double secs(struct timeval tv)
{
	return tv.tv_sec + tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	int status, rc;
	pid_t pid;

	if (argc < 2) {
		fprintf(stderr, "usage: bench-run CMD [ARG...]\n");
		return 2;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("bench-run: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror("bench-run: exec");
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) != pid) {
		perror("bench-run: wait4");
		return 2;
	}
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	e2e_say("E2E-RESULT prog=rusage majflt=%ld minflt=%ld utime=%.2f stime=%.2f rc=%d",
		ru.ru_majflt, ru.ru_minflt, secs(ru.ru_utime), secs(ru.ru_stime), rc);
	return rc;
}
